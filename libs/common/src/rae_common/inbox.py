"""Inbox: a consumer's effect happens once per event, however often the event is delivered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from rae_common.events import Envelope

__all__ = ["process_once"]

Effect = Callable[[asyncpg.Connection], Awaitable[None]]


async def process_once(
    pool: asyncpg.Pool, schema: str, consumer: str, envelope: Envelope, effect: Effect
) -> bool:
    """Run `effect` and record the event id in one transaction; False if already processed.

    If the effect raises, the transaction (inbox row included) rolls back, so a redelivery
    tries again.
    """
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            f"""INSERT INTO {schema}.inbox (consumer, event_id, event_type, tenant_id)
                VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
            consumer,
            envelope.id,
            envelope.type,
            envelope.tenant_id,
        )
        if not inserted:
            return False
        await effect(conn)
        return True
