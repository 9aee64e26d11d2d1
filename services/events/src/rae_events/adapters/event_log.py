"""The event log: what the engine consumed, recorded once per event through the inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry import trace

from rae_common.events import Envelope
from rae_common.inbox import process_once
from rae_common.messaging import ConsumedRecord

__all__ = ["CONSUMER", "SCHEMA", "EventLog"]

SCHEMA = "events"
CONSUMER = "events-engine"


class EventLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, envelope: Envelope, meta: ConsumedRecord) -> bool:
        """Log a consumed event; a redelivered event is not logged again (returns False)."""
        ctx = trace.get_current_span().get_span_context()
        trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None

        async def effect(conn: asyncpg.Connection) -> None:
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

        return await process_once(self.pool, SCHEMA, CONSUMER, envelope, effect)

    async def list(
        self, tenant_id: str, *, event_type: str | None, before: datetime | None, limit: int
    ) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
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
