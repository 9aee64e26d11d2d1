"""Inbox: a redelivered event has its effect once; a failed effect leaves no trace."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from rae_common.db import apply_migrations
from rae_common.events import MemoryCreated, new_envelope
from rae_common.inbox import process_once
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
