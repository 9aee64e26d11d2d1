"""The vector port and its adapters: pgvector (in the memories row) and Qdrant.

Every search is filtered by tenant here, not by callers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from qdrant_client import AsyncQdrantClient, models

from rae_memory.adapters.sql import COLUMNS, SCHEMA, Filters, vector_param

__all__ = ["DEFAULT_EF_SEARCH", "Nearest", "PgVectorIndex", "QdrantIndex", "VectorIndex", "VectorItem"]

# With the m 12 graph of migration 0008: recall@10 of the vector candidates against an exact scan
# 0.823 on 50k real sentence embeddings (0.801 with m 16 at 128). Not higher: the planner prices an
# HNSW scan by m x ef_search, and from ~300 on it chose an exact scan of a 10k-memory tenant
# instead (29 ms against 1.4; docs/BENCHMARKS.md, "Eighth pass").
DEFAULT_EF_SEARCH = 200


@dataclass(frozen=True, slots=True)
class VectorItem:
    id: uuid.UUID
    vector: Sequence[float]
    layer: str
    tags: Sequence[str]
    created_at_ts: float
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Nearest:
    ids: list[uuid.UUID]
    rows: dict[uuid.UUID, dict[str, Any]]


class VectorIndex(Protocol):
    name: str
    # True: vectors live in the memories row, written in the same transaction as the row.
    in_row: bool

    async def upsert(self, tenant_id: str, items: Sequence[VectorItem]) -> None: ...

    async def delete(self, tenant_id: str, ids: Sequence[uuid.UUID]) -> None: ...

    async def prepare(self, conn: asyncpg.Connection, limit: int) -> None:
        """Set up the tenant transaction for a search of up to `limit` results; it may run
        before the query vector is known."""
        ...

    async def search(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        vector: Sequence[float],
        limit: int,
        filters: Filters,
    ) -> Nearest:
        """The nearest ids, nearest first, in a transaction `prepare`d for `limit`, and the rows
        (`COLUMNS` of `memory.memories`) of those the index read with them."""
        ...


class PgVectorIndex:
    """HNSW (cosine) on `memory.memories.embedding`; iterative scans keep filtered queries full."""

    name = "pgvector"
    in_row = True

    def __init__(self, ef_search: int = DEFAULT_EF_SEARCH) -> None:
        self.ef_search = ef_search

    # The vector is written with its row, in the row's transaction: nothing to do here.
    async def upsert(self, tenant_id: str, items: Sequence[VectorItem]) -> None:  # noqa: ARG002
        return None

    async def delete(self, tenant_id: str, ids: Sequence[uuid.UUID]) -> None:  # noqa: ARG002
        return None

    async def prepare(self, conn: asyncpg.Connection, limit: int) -> None:
        # Both settings in one round trip; transaction-local like SET LOCAL.
        await conn.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.ef_search', $1, true)",
            str(max(self.ef_search, limit)),
        )

    async def search(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        vector: Sequence[float],
        limit: int,
        filters: Filters,
    ) -> Nearest:
        # The rows come with the search: one statement where ids and a fetch of their rows would
        # be two.
        params: list[Any] = [tenant_id, vector_param(vector)]
        where = filters.sql(params)
        params.append(limit)
        rows = await conn.fetch(
            f"""SELECT {COLUMNS} FROM {SCHEMA}.memories
                WHERE tenant_id = $1 AND embedding IS NOT NULL AND {where}
                ORDER BY embedding <=> $2::vector LIMIT ${len(params)}""",
            *params,
        )
        return Nearest([row["id"] for row in rows], {row["id"]: dict(row) for row in rows})


class QdrantIndex:
    """One collection; tenant id is an indexed payload field every query must match."""

    name = "qdrant"
    in_row = False

    def __init__(
        self, client: AsyncQdrantClient, collection: str, dimensions: int, *, payload_indexes: bool = True
    ) -> None:
        self.client = client
        self.collection = collection
        self.dimensions = dimensions
        # A server needs payload indexes for fast filtered search; local mode has none (and warns).
        self.payload_indexes = payload_indexes

    async def ensure_collection(self) -> None:
        if await self.client.collection_exists(self.collection):
            return
        await self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=self.dimensions, distance=models.Distance.COSINE),
        )
        if not self.payload_indexes:
            return
        for name, schema in (
            ("tenant_id", models.PayloadSchemaType.KEYWORD),
            ("layer", models.PayloadSchemaType.KEYWORD),
            ("tags", models.PayloadSchemaType.KEYWORD),
            ("created_at", models.PayloadSchemaType.FLOAT),
        ):
            await self.client.create_payload_index(self.collection, name, field_schema=schema)

    async def upsert(self, tenant_id: str, items: Sequence[VectorItem]) -> None:
        if not items:
            return
        await self.client.upsert(
            self.collection,
            points=[
                models.PointStruct(
                    id=str(item.id),
                    vector=list(item.vector),
                    payload={
                        "tenant_id": tenant_id,
                        "layer": item.layer,
                        "tags": list(item.tags),
                        "created_at": item.created_at_ts,
                        "metadata": item.metadata,
                    },
                )
                for item in items
            ],
        )

    async def delete(self, tenant_id: str, ids: Sequence[uuid.UUID]) -> None:
        if not ids:
            return
        await self.client.delete(
            self.collection,
            points_selector=models.FilterSelector(
                filter=models.Filter(
                    must=[
                        _match("tenant_id", tenant_id),
                        models.HasIdCondition(has_id=[str(i) for i in ids]),
                    ]
                )
            ),
        )

    async def prepare(self, conn: asyncpg.Connection, limit: int) -> None:  # noqa: ARG002
        return None  # nothing to set in Postgres

    async def search(
        self,
        conn: asyncpg.Connection,  # noqa: ARG002 (the port passes the tenant transaction; unused here)
        tenant_id: str,
        vector: Sequence[float],
        limit: int,
        filters: Filters,
    ) -> Nearest:
        must: list[models.Condition] = [_match("tenant_id", tenant_id)]
        if filters.layers:
            must.append(models.FieldCondition(key="layer", match=models.MatchAny(any=list(filters.layers))))
        for tag in filters.tags or ():
            must.append(_match("tags", tag))
        for key, value in (filters.metadata or {}).items():
            must.append(_match(f"metadata.{key}", value))
        if filters.since is not None or filters.until is not None:
            must.append(
                models.FieldCondition(
                    key="created_at",
                    range=models.Range(
                        gte=filters.since.timestamp() if filters.since else None,
                        lt=filters.until.timestamp() if filters.until else None,
                    ),
                )
            )
        response = await self.client.query_points(
            self.collection, query=list(vector), query_filter=models.Filter(must=must), limit=limit
        )
        # The rows are in Postgres: the caller reads them.
        return Nearest([uuid.UUID(str(point.id)) for point in response.points], {})

    async def ping(self) -> None:
        await self.client.collection_exists(self.collection)


def _match(key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))
