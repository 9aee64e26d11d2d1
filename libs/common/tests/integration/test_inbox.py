"""Inbox: a redelivered event has its effect once; a failed effect leaves no trace."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from rae_common.db import apply_migrations
from rae_common.events import MemoryCreated, new_envelope
from rae_common.inbox import process_new, process_once
from rae_common.outbox import shared_migrations


@pytest.fixture
async def inbox_schema(pool: asyncpg.Pool, schema: str) -> str:
    await apply_migrations(pool, schema, shared_migrations("inbox"))
    await pool.execute(f"CREATE TABLE {schema}.effects (event_id uuid, note text)")
    return schema


def envelope():
    data = MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash="h")
    return new_envelope("memory.created", data, tenant_id="acme", producer="test")


async def test_same_event_twice_has_one_effect(pool: asyncpg.Pool, inbox_schema: str) -> None:
    event = envelope()

    async def effect(conn: asyncpg.Connection) -> None:
        await conn.execute(f"INSERT INTO {inbox_schema}.effects VALUES ($1, 'done')", event.id)

    assert await process_once(pool, inbox_schema, "c1", event, effect) is True
    assert await process_once(pool, inbox_schema, "c1", event, effect) is False
    assert await pool.fetchval(f"SELECT count(*) FROM {inbox_schema}.effects") == 1
    # Another consumer of the same event has its own effect.
    assert await process_once(pool, inbox_schema, "c2", event, effect) is True


async def test_failed_effect_rolls_back_so_redelivery_retries(pool: asyncpg.Pool, inbox_schema: str) -> None:
    event = envelope()

    async def failing(conn: asyncpg.Connection) -> None:
        await conn.execute(f"INSERT INTO {inbox_schema}.effects VALUES ($1, 'partial')", event.id)
        raise RuntimeError("downstream failed")

    async def working(conn: asyncpg.Connection) -> None:
        await conn.execute(f"INSERT INTO {inbox_schema}.effects VALUES ($1, 'done')", event.id)

    with pytest.raises(RuntimeError):
        await process_once(pool, inbox_schema, "c1", event, failing)
    assert await pool.fetchval(f"SELECT count(*) FROM {inbox_schema}.inbox") == 0
    assert await process_once(pool, inbox_schema, "c1", event, working) is True
    notes = await pool.fetch(f"SELECT note FROM {inbox_schema}.effects")
    assert [n["note"] for n in notes] == ["done"]


async def test_a_batch_has_effects_for_its_new_events_only_in_order(
    pool: asyncpg.Pool, inbox_schema: str
) -> None:
    seen, first, second, third = envelope(), envelope(), envelope(), envelope()
    assert await process_once(pool, inbox_schema, "c1", seen, _noop) is True
    handed: list[list[uuid.UUID]] = []

    async def effect(conn: asyncpg.Connection, new: list) -> None:
        handed.append([e.id for e in new])
        await conn.executemany(
            f"INSERT INTO {inbox_schema}.effects VALUES ($1, 'done')", [(e.id,) for e in new]
        )

    # A redelivered event and one that came twice in the same poll.
    batch = [first, seen, second, first, third]
    new = await process_new(pool, inbox_schema, "c1", batch, effect)
    assert [e.id for e in new] == [first.id, second.id, third.id]
    assert handed == [[first.id, second.id, third.id]]
    assert await pool.fetchval(f"SELECT count(*) FROM {inbox_schema}.effects") == 3
    # Delivered again: nothing is new, and the effect is not called.
    assert await process_new(pool, inbox_schema, "c1", batch, effect) == []
    assert len(handed) == 1


async def test_a_failed_batch_records_none_of_its_events(pool: asyncpg.Pool, inbox_schema: str) -> None:
    batch = [envelope(), envelope()]

    async def failing(conn: asyncpg.Connection, new: list) -> None:
        await conn.execute(f"INSERT INTO {inbox_schema}.effects VALUES ($1, 'partial')", new[0].id)
        raise RuntimeError("downstream failed")

    with pytest.raises(RuntimeError):
        await process_new(pool, inbox_schema, "c1", batch, failing)
    assert await pool.fetchval(f"SELECT count(*) FROM {inbox_schema}.inbox") == 0
    assert await pool.fetchval(f"SELECT count(*) FROM {inbox_schema}.effects") == 0
    assert len(await process_new(pool, inbox_schema, "c1", batch, _batch_noop)) == 2


async def _noop(conn: asyncpg.Connection) -> None:  # noqa: ARG001
    return None


async def _batch_noop(conn: asyncpg.Connection, new: list) -> None:  # noqa: ARG001
    return None
