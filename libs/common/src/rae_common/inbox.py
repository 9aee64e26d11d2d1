"""Inbox: a consumer's effect happens once per event, however often the event is delivered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from rae_common.events import Envelope

__all__ = ["process_new", "process_once"]

Effect = Callable[[asyncpg.Connection], Awaitable[None]]
BatchEffect = Callable[[asyncpg.Connection, list[Envelope]], Awaitable[None]]


async def process_once(
    pool: asyncpg.Pool, schema: str, consumer: str, envelope: Envelope, effect: Effect
) -> bool:
    """Run `effect` and record the event id in one transaction; False if already processed.

    If the effect raises, the transaction (inbox row included) rolls back, so a redelivery
    tries again.
    """

    async def effect_of_one(conn: asyncpg.Connection, _: list[Envelope]) -> None:
        await effect(conn)

    return bool(await process_new(pool, schema, consumer, [envelope], effect_of_one))


async def process_new(
    pool: asyncpg.Pool, schema: str, consumer: str, envelopes: Sequence[Envelope], effect: BatchEffect
) -> list[Envelope]:
    """Run `effect` on the events not processed before and record them, in one transaction.

    Answers those events, in their order (an id seen twice counts once); the effect is not called
    when there are none. If it raises, nothing is recorded, so a redelivery tries them all again.
    One statement records a whole batch: a consumer that handles what a poll brought in one call
    pays the round trips once, not once per event.
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""INSERT INTO {schema}.inbox (consumer, event_id, event_type, tenant_id)
                SELECT $1, e.id, e.type, e.tenant_id
                FROM unnest($2::uuid[], $3::text[], $4::text[]) AS e (id, type, tenant_id)
                ON CONFLICT DO NOTHING RETURNING event_id""",
            consumer,
            [e.id for e in envelopes],
            [e.type for e in envelopes],
            [e.tenant_id for e in envelopes],
        )
        recorded = {row["event_id"] for row in rows}
        new: list[Envelope] = []
        for envelope in envelopes:
            if envelope.id in recorded:
                recorded.discard(envelope.id)
                new.append(envelope)
        if new:
            await effect(conn, new)
        return new
