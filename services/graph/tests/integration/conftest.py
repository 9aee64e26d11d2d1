from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rae_common.events import TOPIC_MEMORY, Envelope, registry
from rae_common.testing import eventually, serve_app, settings_from_env, skip_backlog
from rae_graph.consumers import CONSUMER
from rae_graph.main import GraphSettings, create_app

T = TypeVar("T")


@pytest.fixture(scope="session")
def graph_settings(infra_env: dict[str, str], ml_url: str, memory_url: str) -> GraphSettings:
    return settings_from_env(infra_env, GraphSettings, ml_url=ml_url, memory_url=memory_url)


@pytest.fixture(scope="session")
def bootstrap(infra_env: dict[str, str]) -> str:
    return infra_env["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture(scope="module")
async def graph(graph_settings: GraphSettings, bootstrap: str) -> AsyncIterator[httpx.AsyncClient]:
    # Earlier tests' memory.created events are not this module's: start after them.
    await skip_backlog(bootstrap, {CONSUMER: (TOPIC_MEMORY,)})
    async with serve_app(create_app(graph_settings)) as client:
        await eventually(lambda: _assigned(client), what="the graph consumer's partitions assigned")
        yield client


async def _assigned(client: httpx.AsyncClient) -> bool | None:
    # Not /readyz as a whole: under filterwarnings=error the shared neo4j probe fails on the
    # driver's PreviewWarning (verify_connectivity with a database argument).
    checks = (await client.get("/readyz")).json()["checks"]
    return True if checks["kafka-consumer"] == "ok" else None


@pytest.fixture(scope="module")
async def memories(memory_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=memory_url, timeout=60) as client:
        yield client


@pytest.fixture
def tenant() -> dict[str, str]:
    return {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}


async def events_of(
    bootstrap: str, topic: str, tenant_id: str, expected: int, timeout_s: float = 30
) -> list[Envelope]:
    """The tenant's events on a shared topic (keyed by tenant id), read from the beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        found: list[Envelope] = []
        deadline = time.monotonic() + timeout_s
        tps: list[TopicPartition] = []
        while not tps and time.monotonic() < deadline:
            await consumer.topics()
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(registry.parse(r.value) for r in records if r.key == tenant_id.encode())
        return found
    finally:
        await consumer.stop()


async def call(
    client: httpx.AsyncClient, method: str, path: str, tenant: dict[str, str], expected: int = 200, **kw: Any
) -> Any:
    response = await client.request(method, path, headers=tenant, **kw)
    assert response.status_code == expected, response.text
    return response.json() if response.content else None
