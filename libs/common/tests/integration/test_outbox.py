"""Outbox against real Postgres and a real Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from rae_common.db import apply_migrations
from rae_common.events import MemoryCreated, new_envelope
from rae_common.messaging import KafkaPublisher, create_topics
from rae_common.outbox import OutboxRelay, add_to_outbox, shared_migrations
from rae_common.settings import ServiceSettings
from rae_common.testing import new_topic, read_topic
from rae_localstack import Stack


async def wait_for(predicate, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def outbox_schema(pool: asyncpg.Pool, schema: str) -> str:
    await apply_migrations(pool, schema, shared_migrations("outbox"))
    return schema


def event(tenant: str = "acme"):
    data = MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash=uuid.uuid4().hex)
    return new_envelope("memory.created", data, tenant_id=tenant, producer="test")


async def write_events(pool: asyncpg.Pool, schema: str, topic: str, count: int) -> list[str]:
    ids = []
    async with pool.acquire() as conn, conn.transaction():
        for i in range(count):
            envelope = event(tenant=f"tenant-{i % 3}")
            await add_to_outbox(conn, schema, envelope, topic=topic)
            ids.append(str(envelope.id))
    return ids


@pytest.fixture
def lone_broker(tmp_path: Path, infra_env: dict[str, str], sub_stack_offset) -> Iterator[Stack]:
    """A broker of this test's own (not yet started), so the test can hold it down."""
    others = {k: infra_env[k] for k in ("DATABASE_URL", "NEO4J_URI", "REDIS_URL")}
    broker = Stack(tmp_path / "broker", port_offset=sub_stack_offset("outbox-broker-down"), env=others)
    yield broker
    broker.down()


async def test_events_written_while_broker_is_down_are_all_delivered_once_it_is_back(
    pool: asyncpg.Pool, outbox_schema: str, lone_broker: Stack
) -> None:
    bootstrap = lone_broker.infra_env()["KAFKA_BOOTSTRAP_SERVERS"]
    topic = "test.outbox-broker-down"
    ids = await write_events(pool, outbox_schema, topic, 25)
    publisher = KafkaPublisher(bootstrap, client_id="relay-test", timeout_s=2.0)
    relay = OutboxRelay(
        pool, outbox_schema, publisher, batch_size=10, poll_interval_s=0.05, max_backoff_s=0.5
    )
    relay.start()
    try:
        await wait_for(lambda: _true(relay.consecutive_failures >= 2), what="the relay to fail while down")
        assert await relay.pending() == 25
        failed = await pool.fetchrow(
            f"SELECT attempts, last_error FROM {outbox_schema}.outbox ORDER BY seq LIMIT 1"
        )
        assert failed["attempts"] >= 1
        assert "cannot reach Kafka" in failed["last_error"]

        lone_broker.up_infra()
        await create_topics(bootstrap, [topic])
        await wait_for(lambda: _pending_is_zero(relay), what="the outbox to drain")
        # More events after recovery take the fast path.
        ids += await write_events(pool, outbox_schema, topic, 5)
        relay.wake()
        await wait_for(lambda: _pending_is_zero(relay), what="the new events to drain")
    finally:
        await relay.stop()
        await publisher.stop()

    records = await read_topic(bootstrap, topic, expected=30)
    delivered = [json.loads(r.value)["id"] for r in records]
    assert sorted(delivered) == sorted(ids), "every event exactly once"
    for r in records:
        assert r.key.decode() == json.loads(r.value)["tenant_id"]


async def _true(value: bool) -> bool:
    return value


async def _pending_is_zero(relay: OutboxRelay) -> bool:
    return await relay.pending() == 0


async def test_two_relays_never_send_a_row_twice(
    pool: asyncpg.Pool, outbox_schema: str, settings: ServiceSettings
) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers)
    ids = await write_events(pool, outbox_schema, topic, 200)
    publishers = [KafkaPublisher(settings.kafka_bootstrap_servers, client_id=f"r{i}") for i in range(2)]
    relays = [OutboxRelay(pool, outbox_schema, p, batch_size=20, poll_interval_s=0.02) for p in publishers]
    for relay in relays:
        relay.start()
    try:
        await wait_for(lambda: _pending_is_zero(relays[0]), what="the outbox to drain")
    finally:
        for relay, publisher in zip(relays, publishers, strict=True):
            await relay.stop()
            await publisher.stop()
    records = await read_topic(settings.kafka_bootstrap_servers, topic, expected=200)
    assert sorted(json.loads(r.value)["id"] for r in records) == sorted(ids)
    assert sum(r.published for r in relays) == 200


async def test_trace_context_rides_from_writer_to_record_headers(
    pool: asyncpg.Pool, outbox_schema: str, settings: ServiceSettings
) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        async with pool.acquire() as conn, conn.transaction():
            await add_to_outbox(conn, outbox_schema, event(), topic=topic)
    assert not trace.get_current_span().get_span_context().is_valid
    publisher = KafkaPublisher(settings.kafka_bootstrap_servers, client_id="trace-test")
    relay = OutboxRelay(pool, outbox_schema, publisher)
    try:
        assert await relay.run_once() == 1
    finally:
        await publisher.stop()
    (record,) = await read_topic(settings.kafka_bootstrap_servers, topic, expected=1)
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["traceparent"].split("-")[1] == trace_id


async def test_rolled_back_write_publishes_nothing(pool: asyncpg.Pool, outbox_schema: str) -> None:
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await add_to_outbox(conn, outbox_schema, event(), topic="test.never")
            raise RuntimeError("the state change failed")
    assert await pool.fetchval(f"SELECT count(*) FROM {outbox_schema}.outbox") == 0


async def test_stop_cancels_a_batch_stuck_on_a_broker_that_never_answers_and_keeps_it_unsent(
    pool: asyncpg.Pool, outbox_schema: str
) -> None:
    """A relay sending to a broker that accepts connections and never answers stops within its
    bound (it waited for the publisher's timeout, here 60 s), and the batch stays in the outbox
    for the next start (issue #16: shutdown within the grace period)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        await write_events(pool, outbox_schema, "test.outbox-silent-broker", 3)
        publisher = KafkaPublisher(
            f"127.0.0.1:{silent.getsockname()[1]}", client_id="relay-test", timeout_s=60
        )
        relay = OutboxRelay(pool, outbox_schema, publisher, stop_timeout_s=0.5)
        relay.start()
        try:

            async def sending() -> bool:
                locked = await pool.fetchval(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE c.relname = 'outbox' AND l.mode = 'RowShareLock'"
                )
                return bool(locked)

            await wait_for(sending, what="the relay to hold its batch")
            started = time.monotonic()
            await asyncio.wait_for(relay.stop(), timeout=30)
            stopped_after = time.monotonic() - started
        finally:
            await publisher.stop()
    assert stopped_after < 0.5 + 1.5, f"the relay took {stopped_after:.1f} s to stop"
    assert await relay.pending() == 3
