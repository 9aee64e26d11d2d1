from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from rae_common.events import TOPIC_COST, TOPIC_ML, Envelope, LlmUsage, registry
from rae_common.messaging import KafkaPublisher
from rae_common.testing import eventually, serve_app, settings_from_env
from rae_cost.main import CostSettings, create_app

# The service's clock stands still for the session: its "today" cannot roll over mid-test.
NOW = datetime.now(UTC).replace(microsecond=0)
T = TypeVar("T")


@pytest.fixture(scope="session")
def cost_settings(infra_env: dict[str, str]) -> CostSettings:
    return settings_from_env(infra_env, CostSettings)


@pytest.fixture(scope="module")
def app(cost_settings: CostSettings) -> FastAPI:
    return create_app(cost_settings, clock=lambda: NOW)


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(app) as c:
        yield c


@pytest.fixture(scope="module")
async def publisher(infra_env: dict[str, str]) -> AsyncIterator[KafkaPublisher]:
    publisher = KafkaPublisher(infra_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="cost-test")
    yield publisher
    await publisher.stop()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cost(
    app: FastAPI, client: httpx.AsyncClient, publisher: KafkaPublisher, infra_env: dict[str, str]
) -> CostHarness:
    return CostHarness(app, client, publisher, infra_env["KAFKA_BOOTSTRAP_SERVERS"])


class CostHarness:
    """The cost app under test, the broker around it, and the waits a test needs."""

    now = NOW

    def __init__(
        self, app: FastAPI, client: httpx.AsyncClient, publisher: KafkaPublisher, bootstrap: str
    ) -> None:
        self.app = app
        self.client = client
        self.publisher = publisher
        self.bootstrap = bootstrap

    @staticmethod
    def usage(
        tenant: str,
        *,
        request_id: str | None = None,
        prompt: int = 10,
        completion: int = 5,
        cost: float = 0.01,
        model: str = "gpt-test",
        provider: str = "openai",
        at: datetime = NOW,
        calls: int = 1,
        operation: str = "generate",
    ) -> Envelope:
        """An `llm.usage` envelope as ml publishes it."""
        request_id = request_id or f"req-{uuid.uuid4().hex[:12]}"
        return Envelope(
            type="llm.usage",
            tenant_id=tenant,
            occurred_at=at,
            producer="ml",
            idempotency_key=request_id,
            data=LlmUsage(
                request_id=request_id,
                operation=operation,
                model=model,
                provider=provider,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_usd=cost,
                estimated=False,
                trace_id="ab" * 16 if calls == 1 else None,
                calls=calls,
            ),
        )

    @staticmethod
    async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float = 30) -> T:
        return await eventually(check, timeout_s=timeout_s)

    async def publish(self, *envelopes: Envelope) -> None:
        for envelope in envelopes:
            await self.publisher.publish(envelope, topic=TOPIC_ML)

    async def consume(self, *envelopes: Envelope) -> None:
        """Publish, then wait until the last one is recorded: a tenant's events are consumed in
        order, so everything published before it has been handled too."""
        await self.publish(*envelopes)
        last = envelopes[-1]
        assert isinstance(last.data, LlmUsage)
        await self.recorded(last.tenant_id, last.data.request_id)

    async def logs(self, tenant: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get("/v1/cost/logs", params=params, headers={"X-Tenant-ID": tenant})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def recorded(self, tenant: str, request_id: str) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            items = (await self.logs(tenant, request_id=request_id))["items"]
            return items[0] if items else None

        return await self.eventually(found)

    async def governance(self, tenant: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(f"/v1/governance/tenant/{tenant}", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def put_budget(self, tenant: str, **budget: Any) -> dict[str, Any]:
        response = await self.client.put(f"/v1/governance/tenant/{tenant}/budget", json=budget)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def budget_events(self, tenant: str, expected: int, timeout_s: float = 30) -> list[Envelope]:
        """The tenant's events on the budget topic, from its beginning, once `expected` arrived.

        The topic is shared by every test (and kept between runs): records are told apart by
        their key, the tenant id.
        """
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()  # fetches the metadata naming the topic's partitions
            tps = [TopicPartition(TOPIC_COST, p) for p in consumer.partitions_for_topic(TOPIC_COST) or ()]
            assert tps, f"{TOPIC_COST} is unknown to the broker"
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            found: list[Envelope] = []
            deadline = time.monotonic() + timeout_s
            while len(found) < expected and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found.extend(
                        registry.parse(r.value) for r in records if r.key == tenant.encode() and r.value
                    )
            return found
        finally:
            await consumer.stop()
