"""Faults on the real broker: the engine killed mid-stream, the broker down while memories are written."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from rae_common.events import TOPIC_REFLECTION, Envelope, ReflectionRequested, registry
from rae_common.messaging import KafkaPublisher
from rae_common.testing import serve_app, settings_from_env
from rae_events.main import create_app
from rae_localstack import Stack
from rae_memory.main import MemorySettings
from rae_memory.main import create_app as create_memory_app

from .conftest import eventually, fast_settings, memory, records_of


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EngineProcess:
    """The events service as a real process (uvicorn and the app factory, as the local stack runs
    it), so a test can SIGKILL it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **env,
            "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "OUTBOX_POLL_INTERVAL_S": "0.05",
            "LOG_LEVEL": "WARNING",
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "rae_events.main:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, timeout_s: float = 60) -> None:
        async with httpx.AsyncClient(timeout=2) as client:

            async def answers() -> bool | None:
                assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
                try:
                    return True if (await client.get(self.url + "/readyz")).status_code == 200 else None
                except httpx.TransportError:
                    return None

            await eventually(answers, timeout_s, "the events process to be ready")

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture
def engine_process(infra_env: dict[str, str], tmp_path: Path) -> Iterator[EngineProcess]:
    process = EngineProcess(infra_env, tmp_path / "events.log")
    yield process
    process.kill()


async def handled_count(db: asyncpg.Pool, envelopes: list[Envelope]) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM events.inbox WHERE consumer = 'events-engine' AND event_id = ANY($1::uuid[])",
        [e.id for e in envelopes],
    )
    return count


async def test_an_engine_killed_mid_stream_handles_every_event_and_fires_nothing_twice(
    engine_process: EngineProcess, infra_env: dict[str, str], db: asyncpg.Pool, tenant: str
) -> None:
    engine_process.start()
    await engine_process.ready()
    headers = {"X-Tenant-ID": tenant}
    async with httpx.AsyncClient(base_url=engine_process.url, headers=headers, timeout=10) as client:
        created = await client.post(
            "/v1/events/rules", json={"name": "every 10", "type": "memory_count", "params": {"every": 10}}
        )
        assert created.status_code == 201, created.text
    rule_id = created.json()["id"]

    stream = [memory(tenant) for _ in range(400)]
    publisher = KafkaPublisher(infra_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="events-kill-test")
    try:
        publishing = asyncio.create_task(_publish_all(publisher, stream))

        async def enough() -> int | None:
            count = await handled_count(db, stream)
            return count if count >= 40 else None

        await eventually(enough, what="the engine to be in the middle of the stream")
        engine_process.kill()
        at_kill = await handled_count(db, stream)
        await publishing
    finally:
        await publisher.stop()
    assert at_kill < len(stream), "the kill must come in the middle of the stream"

    engine_process.start()
    await engine_process.ready()

    async def all_handled() -> bool | None:
        return True if await handled_count(db, stream) == len(stream) else None

    await eventually(all_handled, 120, "every event handled after the restart")

    expected_keys = {f"memory_count:{rule_id}:{n}" for n in range(10, 401, 10)}
    async with httpx.AsyncClient(base_url=engine_process.url, headers=headers, timeout=10) as client:
        firings = (await client.get("/v1/events/triggers", params={"limit": 500})).json()["items"]
        logged = (await client.get("/v1/events/log", params={"limit": 500, "type": "memory.created"})).json()[
            "items"
        ]
    assert sorted(f["trigger_key"] for f in firings) == sorted(expected_keys)
    assert {f["status"] for f in firings} == {"delivered"}
    assert sorted(e["event_id"] for e in logged) == sorted(str(e.id) for e in stream)

    # The relay may publish a command twice when killed between sending and marking it sent
    # (at-least-once); each firing's command is there, and nothing else.
    records = await records_of(
        infra_env["KAFKA_BOOTSTRAP_SERVERS"], TOPIC_REFLECTION, tenant, len(expected_keys)
    )
    commands = {registry.parse(r.value) for r in records}
    assert {c.id for c in commands} == {uuid.UUID(f["id"]) for f in firings}
    assert all(isinstance(c.data, ReflectionRequested) for c in commands)
    assert {c.idempotency_key for c in commands} == expected_keys


async def _publish_all(publisher: KafkaPublisher, envelopes: list[Envelope]) -> None:
    for envelope in envelopes:
        await publisher.publish(envelope)


@pytest.fixture
def lone_broker(tmp_path: Path, infra_env: dict[str, str], sub_stack_offset) -> Iterator[Stack]:
    """A broker of this test's own (not yet started), so the test can hold it down."""
    others = {k: infra_env[k] for k in ("DATABASE_URL", "NEO4J_URI", "REDIS_URL")}
    broker = Stack(tmp_path / "broker", port_offset=sub_stack_offset("events-broker-down"), env=others)
    yield broker
    broker.down()


async def test_memories_written_while_the_broker_is_down_reach_the_engine_after_it_returns(
    lone_broker: Stack, infra_env: dict[str, str], ml_url: str, tenant: str
) -> None:
    bootstrap = lone_broker.infra_env()["KAFKA_BOOTSTRAP_SERVERS"]
    memory_settings = settings_from_env(
        infra_env, MemorySettings, ml_url=ml_url, kafka_bootstrap_servers=bootstrap
    )
    events_settings = fast_settings(infra_env, kafka_bootstrap_servers=bootstrap)
    headers = {"X-Tenant-ID": tenant}
    async with (
        serve_app(create_memory_app(memory_settings)) as memories,
        serve_app(create_app(events_settings)) as events,
    ):
        rule = await events.post(
            "/v1/events/rules",
            headers=headers,
            json={"name": "every 5", "type": "memory_count", "params": {"every": 5}},
        )
        assert rule.status_code == 201, rule.text
        for i in range(10):
            created = await memories.post(
                "/v1/memories", headers=headers, json={"content": f"While the broker was down, note {i}."}
            )
            assert created.status_code == 201, created.text
        assert (await events.get("/v1/events/log", headers=headers)).json()["items"] == []
        assert (await memories.get("/readyz")).status_code == 503

        await asyncio.to_thread(lone_broker.up_infra)

        async def logged() -> list[dict] | None:
            page = await events.get("/v1/events/log", headers=headers, params={"type": "memory.created"})
            items: list[dict] = page.json()["items"]
            return items if len(items) == 10 else None

        await eventually(logged, 90, "the memories in the engine's log")
        firings = (await events.get("/v1/events/triggers", headers=headers)).json()["items"]
        assert sorted(f["trigger_key"] for f in firings) == sorted(
            f"memory_count:{rule.json()['id']}:{n}" for n in (5, 10)
        )
        records = await records_of(bootstrap, TOPIC_REFLECTION, tenant, 2)
        assert sorted(registry.parse(r.value).idempotency_key for r in records) == sorted(
            f["trigger_key"] for f in firings
        )
