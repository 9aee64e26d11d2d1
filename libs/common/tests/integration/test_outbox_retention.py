"""Published outbox events: kept for the retention window, published again on request."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import asyncpg
import pytest

from rae_common.db import apply_migrations
from rae_common.events import MemoryCreated, new_envelope
from rae_common.messaging import KafkaPublisher
from rae_common.outbox import OutboxRelay, add_to_outbox, shared_migrations
from rae_common.settings import ServiceSettings
from rae_common.testing import new_topic, read_topic


@pytest.fixture
async def outbox_schema(pool: asyncpg.Pool, schema: str) -> str:
    await apply_migrations(pool, schema, shared_migrations("outbox"))
    return schema


async def write(pool: asyncpg.Pool, schema: str, topic: str, count: int) -> list[str]:
    ids = []
    async with pool.acquire() as conn, conn.transaction():
        for _ in range(count):
            data = MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash=uuid.uuid4().hex)
            envelope = new_envelope("memory.created", data, tenant_id="acme", producer="test")
            await add_to_outbox(conn, schema, envelope, topic=topic)
            ids.append(str(envelope.id))
    return ids


def test_the_outbox_table_comes_with_every_migration_of_it() -> None:
    assert [m.name for m in shared_migrations("outbox")] == ["outbox", "outbox_retention"]
    with pytest.raises(ValueError, match="unknown shared tables"):
        shared_migrations("outbox_retention")


async def test_the_events_of_a_publication_range_are_published_again_and_only_they(
    pool: asyncpg.Pool, outbox_schema: str, settings: ServiceSettings
) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers)
    publisher = KafkaPublisher(settings.kafka_bootstrap_servers, client_id="republish-test")
    relay = OutboxRelay(pool, outbox_schema, publisher)
    try:
        early = await write(pool, outbox_schema, topic, 3)
        assert await relay.run_once() == 3
        late = await write(pool, outbox_schema, topic, 2)
        assert await relay.run_once() == 2
        # The early ones were published an hour ago, as far as the table knows.
        await pool.execute(
            f"UPDATE {outbox_schema}.outbox SET sent_at = sent_at - interval '1 hour' "
            "WHERE id = ANY($1::uuid[])",
            early,
        )
        boundary = await pool.fetchval(
            f"SELECT min(sent_at) FROM {outbox_schema}.outbox WHERE id = ANY($1::uuid[])", late
        )

        assert await relay.republish(since=boundary) == 2
        assert await relay.pending() == 2
        assert await relay.run_once() == 2
        assert await relay.republish(until=boundary) == 3
        assert await relay.run_once() == 3
        assert await relay.republish(since=boundary + timedelta(hours=1)) == 0
    finally:
        await publisher.stop()

    records = await read_topic(settings.kafka_bootstrap_servers, topic, expected=10)
    delivered = sorted(json.loads(r.value)["id"] for r in records)
    assert delivered == sorted(early * 2 + late * 2), "each event published twice: once, then again"


async def test_published_events_outliving_the_retention_window_are_deleted(
    pool: asyncpg.Pool, outbox_schema: str, settings: ServiceSettings
) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers)
    publisher = KafkaPublisher(settings.kafka_bootstrap_servers, client_id="retention-test")
    relay = OutboxRelay(pool, outbox_schema, publisher, retention_s=3600)
    try:
        old = await write(pool, outbox_schema, topic, 3)
        recent = await write(pool, outbox_schema, topic, 2)
        assert await relay.run_once() == 5
        # Published again just now: the window still counts from when they were written.
        assert await relay.republish() == 5
        assert await relay.run_once() == 5
        unsent_old = await write(pool, outbox_schema, topic, 1)
        await pool.execute(
            f"UPDATE {outbox_schema}.outbox SET created_at = created_at - interval '2 hours' "
            "WHERE id = ANY($1::uuid[])",
            old + unsent_old,
        )

        assert await relay.prune(batch=2) == 3
        left = {str(r["id"]) for r in await pool.fetch(f"SELECT id FROM {outbox_schema}.outbox")}
        assert left == set(recent + unsent_old), "recent and unsent events stay"
        assert await relay.republish() == 2, "only what the window keeps is published again"
    finally:
        await publisher.stop()
