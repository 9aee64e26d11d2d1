"""SIGTERM while a service's consumer handles a record stuck on a dependency stops the service
within the local stack's grace period, and the record is not lost: it was not committed, so the
group delivers it again (issue #16: consumers waited up to 30 s for the record in hand).

The graph (a `memory.created` to merge) and reflection (a `reflection.requested`) services run as
the local stack runs them: uvicorn, the app factory, the stack's environment. Their memory and ml
services are a server that takes every request and never answers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from rae_common.events import (
    TOPIC_MEMORY,
    TOPIC_REFLECTION,
    Envelope,
    EventData,
    MemoryCreated,
    ReflectionRequested,
    registry,
)
from rae_common.messaging import KafkaPublisher
from rae_common.testing import eventually, skip_backlog
from rae_common.testing_processes import service_process, silent_server
from rae_localstack._stack import STOP_GRACE_S


@dataclass(frozen=True)
class Consumer:
    app_factory: str
    group: str
    topics: tuple[str, ...]
    event_type: str
    data: EventData
    # A request to have in flight too, stuck on the silent server's POSTs (the record's handler
    # waits on a GET): the longest shutdown, the HTTP drain first, then the consumer.
    stuck_request: tuple[str, dict[str, object]] | None = None


CONSUMERS = {
    "graph": Consumer(
        "rae_graph.main:create_app",
        "graph",
        (TOPIC_MEMORY,),
        "memory.created",
        MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash="0" * 64),
        ("/v1/graph/extract", {"text": "Alice Smith works at Acme Labs."}),
    ),
    "reflection": Consumer(
        "rae_reflection.main:create_app",
        "reflection",
        (TOPIC_REFLECTION, TOPIC_MEMORY),
        "reflection.requested",
        ReflectionRequested(
            rule_id=uuid.uuid4(),
            reason="test",
            since=datetime(2026, 1, 1, tzinfo=UTC),
            memory_count=3,
            trigger_key=f"shutdown-{uuid.uuid4()}",
        ),
    ),
}


async def delivered_again(
    consumer: Consumer, bootstrap: str, event_id: uuid.UUID, timeout_s: float = 20
) -> bool:
    """A fresh member of the service's group, reading from its committed offsets, gets the event
    (and commits past it: nothing is left for the next tests)."""
    member = AIOKafkaConsumer(
        *consumer.topics,
        bootstrap_servers=bootstrap,
        group_id=consumer.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        rebalance_timeout_ms=2000,
    )
    await member.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in (await member.getmany(timeout_ms=200)).values():
                if any(registry.parse(r.value or b"").id == event_id for r in records):
                    await member.commit()
                    return True
        return False
    finally:
        await member.stop()


@pytest.mark.parametrize("service", sorted(CONSUMERS))
async def test_sigterm_while_a_record_is_stuck_on_a_dependency_stops_within_the_grace_and_loses_nothing(
    service: str, infra_env: dict[str, str], tmp_path: Path
) -> None:
    consumer = CONSUMERS[service]
    bootstrap = infra_env["KAFKA_BOOTSTRAP_SERVERS"]
    await skip_backlog(bootstrap, {consumer.group: consumer.topics})
    event = Envelope(
        type=consumer.event_type,
        tenant_id=f"t-{uuid.uuid4().hex[:8]}",
        producer="test",
        idempotency_key=f"shutdown-{uuid.uuid4()}",
        data=consumer.data,
    )
    with (
        silent_server() as silent,
        service_process(
            consumer.app_factory,
            {**infra_env, "MEMORY_URL": silent.url, "ML_URL": silent.url, "LOG_LEVEL": "WARNING"},
            tmp_path / f"{service}.log",
        ) as process,
    ):
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:

            async def consuming() -> bool | None:
                assert process.process.poll() is None, process.tail()
                try:
                    checks = (await client.get("/readyz")).json().get("checks", {})
                except httpx.TransportError:
                    return None
                return True if checks.get("kafka-consumer") == "ok" else None

            await eventually(consuming, timeout_s=60, what=f"the {service} consumer's partitions assigned")
            publisher = KafkaPublisher(bootstrap, client_id="test-shutdown")
            try:
                await publisher.publish(event)
            finally:
                await publisher.stop()
            in_flight: asyncio.Task[httpx.Response] | None = None
            if consumer.stuck_request is not None:
                path, body = consumer.stuck_request
                in_flight = asyncio.create_task(
                    client.post(path, json=body, headers={"X-Tenant-ID": event.tenant_id})
                )
            try:

                async def stuck() -> bool | None:
                    asked = set(silent.methods)
                    return True if "GET" in asked and (in_flight is None or "POST" in asked) else None

                await eventually(
                    stuck, timeout_s=20, what="the handler (and the request) to call the silent dependency"
                )
                stopped_after = await process.stop_within(STOP_GRACE_S)
            finally:
                if in_flight is not None:
                    in_flight.cancel()
                    await asyncio.gather(in_flight, return_exceptions=True)
        assert stopped_after is not None, (
            f"still running {STOP_GRACE_S:g} s after SIGTERM with a record in hand\n" + process.tail()
        )
        print(  # noqa: T201 (the figure, shown with -s)
            f"\n{service}, handler{' and a request' if in_flight else ''} stuck on a silent dependency: "
            f"stopped {stopped_after:.2f} s after SIGTERM (grace {STOP_GRACE_S:g} s), "
            f"exit code {process.process.returncode}"
        )
    assert await asyncio.wait_for(delivered_again(consumer, bootstrap, event.id), timeout=30), (
        "the record in hand at shutdown was committed: it is lost"
    )
