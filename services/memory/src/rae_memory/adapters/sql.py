"""SQL building blocks of the memory schema: columns, tenant transactions, filters."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rae_common.db import Where

__all__ = ["COLUMNS", "LIVE", "SCHEMA", "Filters", "vector_param", "vectors_param"]

SCHEMA = "memory"
COLUMNS = (
    "id, tenant_id, content, layer, tags, metadata, source, subject, importance, content_hash, "
    "embedding_model, document_id, chunk_index, created_at, updated_at, expires_at"
)
LIVE = "(expires_at IS NULL OR expires_at > now())"


def vector_param(vector: Sequence[float]) -> list[float]:
    """A vector as a `real[]` parameter (cast `$n::real[]::vector` in SQL).

    asyncpg sends `real[]` in binary: no float formatting here and no text parsing in Postgres
    (half the time of a `'[...]'::vector` literal for a 256-row insert)."""
    return list(vector)


def vectors_param(vectors: Sequence[Sequence[float]]) -> list[float]:
    """Many vectors as ONE flat `real[]`; row n (from 1) is the slice `[(n-1)*d+1 : n*d]`."""
    return list(itertools.chain.from_iterable(vectors))


@dataclass(frozen=True, slots=True)
class Filters:
    layers: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    metadata: dict[str, Any] | None = None
    since: datetime | None = None
    until: datetime | None = None
    subject: str | None = None

    @property
    def narrows(self) -> bool:
        """Whether any condition besides "not expired" applies."""
        return bool(self.layers or self.tags or self.metadata) or any(
            v is not None for v in (self.since, self.until, self.subject)
        )

    def sql(self, params: list[Any], alias: str = "") -> str:
        """WHERE conditions (tenant excluded) appending their values to `params`."""
        p = f"{alias}." if alias else ""
        where = Where(params)
        where.add(LIVE.replace("expires_at", f"{p}expires_at"))
        if self.layers:
            where.add(f"{p}layer = ANY({where.bind(list(self.layers))}::text[])")
        if self.tags:
            where.add(f"{p}tags @> {where.bind(list(self.tags))}::text[]")
        if self.metadata:
            where.add(f"{p}metadata @> {where.bind(self.metadata)}::jsonb")
        where.window(f"{p}created_at", self.since, self.until)
        where.equals(f"{p}subject", self.subject)
        return where.sql()
