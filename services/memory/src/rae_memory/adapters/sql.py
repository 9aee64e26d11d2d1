"""SQL building blocks of the memory schema: columns, tenant transactions, filters."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

__all__ = ["COLUMNS", "LIVE", "SCHEMA", "Filters", "tenant_tx", "vector_literal"]

SCHEMA = "memory"
COLUMNS = (
    "id, tenant_id, content, layer, tags, metadata, source, subject, importance, content_hash, "
    "embedding_model, document_id, chunk_index, created_at, updated_at, expires_at"
)
LIVE = "(expires_at IS NULL OR expires_at > now())"


@contextlib.asynccontextmanager
async def tenant_tx(pool: asyncpg.Pool, tenant_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that row-level security scopes to `tenant_id` (queries filter it too)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant_id)
        yield conn


def vector_literal(vector: Sequence[float]) -> str:
    return json.dumps(list(vector))


@dataclass(frozen=True, slots=True)
class Filters:
    layers: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    metadata: dict[str, Any] | None = None
    since: datetime | None = None
    until: datetime | None = None
    subject: str | None = None

    def sql(self, params: list[Any], alias: str = "") -> str:
        """WHERE conditions (tenant excluded) appending their values to `params`."""
        p = f"{alias}." if alias else ""
        conditions = [LIVE.replace("expires_at", f"{p}expires_at")]

        def bind(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if self.layers:
            conditions.append(f"{p}layer = ANY({bind(list(self.layers))}::text[])")
        if self.tags:
            conditions.append(f"{p}tags @> {bind(list(self.tags))}::text[]")
        if self.metadata:
            conditions.append(f"{p}metadata @> {bind(self.metadata)}::jsonb")
        if self.since is not None:
            conditions.append(f"{p}created_at >= {bind(self.since)}")
        if self.until is not None:
            conditions.append(f"{p}created_at < {bind(self.until)}")
        if self.subject is not None:
            conditions.append(f"{p}subject = {bind(self.subject)}")
        return " AND ".join(conditions)
