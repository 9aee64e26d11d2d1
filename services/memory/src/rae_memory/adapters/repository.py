"""Postgres repository of memories; every query is filtered by tenant here, not by callers."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from rae_common.events import MemoryCreated, new_envelope
from rae_common.outbox import add_to_outbox

__all__ = ["SCHEMA", "MemoryRepository"]

SCHEMA = "memory"
_COLUMNS = (
    "id, tenant_id, content, layer, tags, metadata, source, importance, content_hash, created_at, expires_at"
)


class MemoryRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(
        self,
        tenant_id: str,
        *,
        content: str,
        layer: str,
        tags: list[str],
        metadata: dict[str, Any],
        source: str | None,
        importance: float,
        content_hash: str,
    ) -> tuple[dict[str, Any], bool]:
        """Store a memory and its `memory.created` event in one transaction.

        Returns (row, created); the same content in the same tenant and layer returns the
        existing row with created=False and publishes nothing.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""INSERT INTO {SCHEMA}.memories
                        (id, tenant_id, content, layer, tags, metadata, source, importance, content_hash)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                    ON CONFLICT (tenant_id, layer, content_hash) DO NOTHING
                    RETURNING {_COLUMNS}""",
                uuid.uuid4(),
                tenant_id,
                content,
                layer,
                tags,
                metadata,
                source,
                importance,
                content_hash,
            )
            if row is None:
                existing = await conn.fetchrow(
                    f"""SELECT {_COLUMNS} FROM {SCHEMA}.memories
                        WHERE tenant_id = $1 AND layer = $2 AND content_hash = $3""",
                    tenant_id,
                    layer,
                    content_hash,
                )
                assert existing is not None
                return dict(existing), False
            event = new_envelope(
                "memory.created",
                MemoryCreated(memory_id=row["id"], layer=layer, content_hash=content_hash, tags=tags),
                tenant_id=tenant_id,
                producer="memory",
                idempotency_key=f"memory.created:{row['id']}",
            )
            await add_to_outbox(conn, SCHEMA, event)
            return dict(row), True

    async def get(self, tenant_id: str, memory_id: uuid.UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM {SCHEMA}.memories WHERE tenant_id = $1 AND id = $2",
                tenant_id,
                memory_id,
            )
        return dict(row) if row is not None else None
