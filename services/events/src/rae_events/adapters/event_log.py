"""The event log: what the engine consumed, one row per event (the inbox sees to it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from rae_common.events import Envelope
from rae_common.messaging import ConsumedRecord

__all__ = ["CONSUMER", "SCHEMA", "insert", "page"]

SCHEMA = "events"
CONSUMER = "events-engine"


async def insert(
    conn: asyncpg.Connection, envelope: Envelope, meta: ConsumedRecord, trace_id: str | None
) -> None:
    await conn.execute(
        f"""INSERT INTO {SCHEMA}.event_log (event_id, tenant_id, type, version, producer,
                topic, partition, "offset", trace_id, occurred_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        envelope.id,
        envelope.tenant_id,
        envelope.type,
        envelope.version,
        envelope.producer,
        meta.topic,
        meta.partition,
        meta.offset,
        trace_id,
        envelope.occurred_at,
    )


async def page(
    conn: asyncpg.Connection, tenant_id: str, *, event_type: str | None, before: datetime | None, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT event_id, tenant_id, type, version, producer, topic, partition,
                   "offset", trace_id, occurred_at, received_at
            FROM {SCHEMA}.event_log
            WHERE tenant_id = $1 AND ($2::text IS NULL OR type = $2)
              AND ($3::timestamptz IS NULL OR received_at < $3)
            ORDER BY received_at DESC, event_id LIMIT $4""",
        tenant_id,
        event_type,
        before,
        limit,
    )
    return [dict(row) for row in rows]
