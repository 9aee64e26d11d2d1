"""SQL of the reflection schema. Every query names the tenant; row-level security checks it too."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

__all__ = [
    "SCHEMA",
    "NewReflection",
    "forget",
    "get",
    "insert",
    "page",
    "processed",
    "set_watermark",
    "watermark",
]

SCHEMA = "reflection"
_COLUMNS = "id, tenant_id, content, source_ids, model, prompt_version, request_event_id, created_at"


@dataclass(frozen=True, slots=True)
class NewReflection:
    id: uuid.UUID
    content: str
    source_ids: list[uuid.UUID]
    model: str
    prompt_version: str
    group_key: str


async def insert(
    conn: asyncpg.Connection, tenant_id: str, request_event_id: uuid.UUID, item: NewReflection
) -> dict[str, Any] | None:
    """The new row; None when this request's group, or this memory, was recorded before."""
    row = await conn.fetchrow(
        f"""INSERT INTO {SCHEMA}.reflections
                (id, tenant_id, content, source_ids, model, prompt_version, request_event_id, group_key)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT DO NOTHING
            RETURNING {_COLUMNS}""",
        item.id,
        tenant_id,
        item.content,
        item.source_ids,
        item.model,
        item.prompt_version,
        request_event_id,
        item.group_key,
    )
    return dict(row) if row is not None else None


async def forget(
    conn: asyncpg.Connection, tenant_id: str, memory_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Delete the reflections that cite one of `memory_ids` or are one of them (a reflection's id
    is its reflective memory's); the ids of those deleted."""
    rows = await conn.fetch(
        f"""DELETE FROM {SCHEMA}.reflections
            WHERE tenant_id = $1 AND (id = ANY($2::uuid[]) OR source_ids && $2::uuid[])
            RETURNING id""",
        tenant_id,
        list(memory_ids),
    )
    return [r["id"] for r in rows]


async def get(conn: asyncpg.Connection, tenant_id: str, reflection_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM {SCHEMA}.reflections WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        reflection_id,
    )
    return dict(row) if row is not None else None


async def page(
    conn: asyncpg.Connection, tenant_id: str, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first; `after` is the (created_at, id) of the previous page's last row."""
    if after is None:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM {SCHEMA}.reflections WHERE tenant_id = $1
                ORDER BY created_at DESC, id DESC LIMIT $2""",
            tenant_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM {SCHEMA}.reflections
                WHERE tenant_id = $1 AND (created_at, id) < ($2, $3)
                ORDER BY created_at DESC, id DESC LIMIT $4""",
            tenant_id,
            after[0],
            after[1],
            limit,
        )
    return [dict(r) for r in rows]


async def watermark(conn: asyncpg.Connection, tenant_id: str) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        f"SELECT until FROM {SCHEMA}.watermarks WHERE tenant_id = $1", tenant_id
    )
    return value


async def set_watermark(conn: asyncpg.Connection, tenant_id: str, until: datetime) -> None:
    """Move the tenant's watermark forward to `until` (never back: requests may finish out of order)."""
    await conn.execute(
        f"""INSERT INTO {SCHEMA}.watermarks (tenant_id, until) VALUES ($1, $2)
            ON CONFLICT (tenant_id) DO UPDATE SET until = GREATEST(watermarks.until, EXCLUDED.until),
                                                  updated_at = now()""",
        tenant_id,
        until,
    )


async def processed(conn: asyncpg.Connection, consumer: str, event_id: uuid.UUID) -> bool:
    found: bool = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.inbox WHERE consumer = $1 AND event_id = $2)",
        consumer,
        event_id,
    )
    return found
