"""The event log: what the engine consumed, one row per event (the inbox sees to it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from rae_common.events import Envelope
from rae_common.messaging import ConsumedRecord

__all__ = ["CONSUMER", "SCHEMA", "insert", "page"]

SCHEMA = "events"
CONSUMER = "events-engine"


async def insert(
    conn: asyncpg.Connection, events: Sequence[tuple[Envelope, ConsumedRecord, str | None]]
) -> None:
    """Log (envelope, record, trace id) triples in one statement."""
    await conn.execute(
        f"""INSERT INTO {SCHEMA}.event_log (event_id, tenant_id, type, version, producer,
                topic, partition, "offset", trace_id, occurred_at)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::integer[], $5::text[],
                $6::text[], $7::integer[], $8::bigint[], $9::text[], $10::timestamptz[])""",
        [e.id for e, _, _ in events],
        [e.tenant_id for e, _, _ in events],
        [e.type for e, _, _ in events],
        [e.version for e, _, _ in events],
        [e.producer for e, _, _ in events],
        [m.topic for _, m, _ in events],
        [m.partition for _, m, _ in events],
        [m.offset for _, m, _ in events],
        [t for _, _, t in events],
        [e.occurred_at for e, _, _ in events],
    )


async def page(
    conn: asyncpg.Connection,
    tenant_id: str,
    *,
    event_type: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first, after the keyset `after` (received_at, event_id): the events of one
    transaction share their received_at."""
    rows = await conn.fetch(
        f"""SELECT event_id, tenant_id, type, version, producer, topic, partition,
                   "offset", trace_id, occurred_at, received_at
            FROM {SCHEMA}.event_log
            WHERE tenant_id = $1 AND ($2::text IS NULL OR type = $2)
              AND ($3::timestamptz IS NULL OR (received_at, event_id) < ($3, $4::uuid))
            ORDER BY received_at DESC, event_id DESC LIMIT $5""",
        tenant_id,
        event_type,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [dict(row) for row in rows]
