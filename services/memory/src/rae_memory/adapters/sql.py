"""SQL building blocks of the memory schema: columns, tenant transactions, filters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pgvector import Vector
from pgvector.asyncpg import register_vector

from rae_common.db import Where

__all__ = ["COLUMNS", "LIVE", "SCHEMA", "Filters", "register_vector_codec", "vector_param", "vectors_param"]

SCHEMA = "memory"
COLUMNS = (
    "id, tenant_id, content, layer, tags, metadata, source, subject, importance, content_hash, "
    "embedding_model, document_id, chunk_index, created_at, updated_at, expires_at"
)
LIVE = "(expires_at IS NULL OR expires_at > now())"


async def register_vector_codec(conn: asyncpg.Connection) -> None:
    """Send and read `vector` values in pgvector's binary format (`pgvector.asyncpg`): a vector
    is its float32 bytes on the wire and a memcpy in Postgres. 256 vectors of 384 dimensions as
    a `vector[]` took 6 ms per insert vs 52 ms as one flat `real[]` (98k array elements, each
    encoded and decoded on its own) and 129 ms as text literals (bench/hnsw_build_cost.py).

    For every connection of a pool (`rae_common.db.create_pool(setup=...)`), once the
    extension exists: it looks up the schema the extension's types live in."""
    schema = await conn.fetchval(
        "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE t.typname = 'vector' ORDER BY n.nspname = 'public' DESC LIMIT 1"
    )
    if schema is not None:
        await register_vector(conn, schema=schema)


def vector_param(vector: Sequence[float]) -> Vector:
    """A `$n::vector` parameter (binary: needs `register_vector_codec` on the connection)."""
    return Vector(list(vector))


def vectors_param(vectors: Sequence[Sequence[float]]) -> list[Vector]:
    """A `$n::vector[]` parameter: element n (from 1) is the n-th vector."""
    return [Vector(list(v)) for v in vectors]


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
