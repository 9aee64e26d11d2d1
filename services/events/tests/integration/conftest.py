from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from rae_common.events import (
    BudgetExceeded,
    BudgetWarning,
    Envelope,
    EvalCompleted,
    MemoryCreated,
    new_envelope,
    registry,
)
from rae_common.messaging import KafkaPublisher
from rae_common.testing import LoopbackHTTPServer, QuietHandler, eventually, serve_app, settings_from_env
from rae_events.main import EventsSettings, create_app

T = TypeVar("T")
SECRET = "integration-test-secret"


def fast_settings(env: dict[str, str], **overrides: Any) -> EventsSettings:
    """Quick retries and sampling, so webhook and metric tests take fractions of seconds."""
    values: dict[str, Any] = {
        "events_webhook_backoff_base_s": 0.02,
        "events_webhook_backoff_max_s": 0.1,
        "events_webhook_poll_interval_s": 0.2,
        "events_webhook_timeout_s": 2.0,
        "events_metrics_interval_s": 0.3,
        **overrides,
    }
    return settings_from_env(env, EventsSettings, **values)


@pytest.fixture(scope="session")
def events_settings(infra_env: dict[str, str]) -> EventsSettings:
    return fast_settings(infra_env)


@pytest.fixture(scope="module")
def app(events_settings: EventsSettings) -> FastAPI:
    return create_app(events_settings)


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(app) as c:
        yield c


@pytest.fixture(scope="module")
async def publisher(infra_env: dict[str, str]) -> AsyncIterator[KafkaPublisher]:
    publisher = KafkaPublisher(infra_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="events-test")
    yield publisher
    await publisher.stop()


@pytest.fixture(scope="module")
async def db(events_settings: EventsSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(events_settings.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def engine(
    client: httpx.AsyncClient, publisher: KafkaPublisher, db: asyncpg.Pool, infra_env: dict[str, str]
) -> Engine:
    return Engine(client, publisher, db, infra_env["KAFKA_BOOTSTRAP_SERVERS"])


def memory(tenant: str, layer: str = "episodic") -> Envelope:
    data = MemoryCreated(memory_id=uuid.uuid4(), layer=layer, content_hash=uuid.uuid4().hex)
    return new_envelope("memory.created", data, tenant_id=tenant, producer="memory")


def evaluation(tenant: str, recall: float, evaluation_id: uuid.UUID | None = None) -> Envelope:
    data = EvalCompleted(
        evaluation_id=evaluation_id or uuid.uuid4(),
        k=10,
        recall_at_k=recall,
        mrr=0.8,
        ndcg_at_k=0.7,
        cases=25,
    )
    return new_envelope("eval.completed", data, tenant_id=tenant, producer="memory")


def budget(tenant: str, level: str) -> Envelope:
    model = BudgetWarning if level == "warning" else BudgetExceeded
    data = model(period="day", period_start=date.today(), metric="usd", limit=10, used=10, ratio=1.0)
    key = f"budget.{level}:{tenant}:day:{date.today()}:usd"
    return new_envelope(f"budget.{level}", data, tenant_id=tenant, producer="cost", idempotency_key=key)


class Engine:
    """The events app under test, the broker and database around it, and the waits a test needs."""

    def __init__(
        self, client: httpx.AsyncClient, publisher: KafkaPublisher, db: asyncpg.Pool, bootstrap: str
    ) -> None:
        self.client = client
        self.publisher = publisher
        self.db = db
        self.bootstrap = bootstrap

    async def publish(self, *envelopes: Envelope) -> None:
        for envelope in envelopes:
            await self.publisher.publish(envelope)

    async def handled(self, *envelopes: Envelope, timeout_s: float = 30) -> None:
        """Wait until the engine handled (committed) every one of `envelopes`."""
        ids = list({e.id for e in envelopes})

        async def done() -> bool | None:
            count = await self.db.fetchval(
                "SELECT count(*) FROM events.inbox "
                "WHERE consumer = 'events-engine' AND event_id = ANY($1::uuid[])",
                ids,
            )
            return True if count == len(ids) else None

        await eventually(done, timeout_s, f"{len(ids)} events handled")

    async def consume(self, *envelopes: Envelope) -> None:
        await self.publish(*envelopes)
        await self.handled(*envelopes)

    async def call(self, method: str, path: str, tenant: str, expected: int = 200, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, headers={"X-Tenant-ID": tenant}, **kwargs)
        assert response.status_code == expected, response.text
        return response.json() if response.content else None

    async def create_rule(self, tenant: str, **body: Any) -> dict[str, Any]:
        body.setdefault("name", f"rule-{uuid.uuid4().hex[:6]}")
        rule: dict[str, Any] = await self.call("POST", "/v1/events/rules", tenant, 201, json=body)
        return rule

    async def paged(self, path: str, tenant: str, limit: int, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list, page by page along `next_cursor`; no page longer than `limit`."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
            page = await self.call("GET", path, tenant, params=query)
            assert len(page["items"]) <= limit
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    async def firings(self, tenant: str, **params: Any) -> list[dict[str, Any]]:
        page = await self.call("GET", "/v1/events/triggers", tenant, params={"limit": 500, **params})
        items: list[dict[str, Any]] = page["items"]
        return items

    async def firing(self, tenant: str, status: str, timeout_s: float = 30, **params: Any) -> dict[str, Any]:
        """The tenant's single firing, once it has `status`."""

        async def reached() -> dict[str, Any] | None:
            items = await self.firings(tenant, **params)
            assert len(items) <= 1, items
            return items[0] if items and items[0]["status"] == status else None

        return await eventually(reached, timeout_s, f"a firing {status}")

    async def dead_letters(self, tenant: str, **params: Any) -> list[dict[str, Any]]:
        page = await self.call("GET", "/v1/events/dlq", tenant, params=params)
        items: list[dict[str, Any]] = page["items"]
        return items

    async def commands(self, topic: str, tenant: str, expected: int, timeout_s: float = 30) -> list[Envelope]:
        return [
            registry.parse(r.value)
            for r in await records_of(self.bootstrap, topic, tenant, expected, timeout_s)
        ]


async def records_of(
    bootstrap: str, topic: str, tenant: str, expected: int, timeout_s: float = 30
) -> list[Any]:
    """The tenant's records on a shared topic (told apart by their key, the tenant id), read from
    the beginning until `expected` arrived or the deadline passed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert tps, f"{topic} is unknown to the broker"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(r for r in records if r.key == tenant.encode())
        return found
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int


class WebhookReceiver:
    """A real HTTP receiver whose answers a test scripts: fail the next N requests, or all."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.fail_next = 0
        self.fail_always = False
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    failing = receiver.fail_always or receiver.fail_next > 0
                    receiver.fail_next = max(0, receiver.fail_next - 1)
                    status = 500 if failing else 200
                    receiver.received.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self._http = LoopbackHTTPServer(Handler)

    @property
    def url(self) -> str:
        return self._http.url + "/hook"

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.status == 200]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.received]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()
