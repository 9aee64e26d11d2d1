"""Integration tests for rae_localstack: real servers on 127.0.0.1, no mocks.

Ports: the test offset's "localstack*" slots (conftest.py's `sub_stack_offset`), so neither a developer
stack nor the session's own test stack is disturbed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rae_localstack import BASE_PORTS, INFRA, SERVICES, Stack, StackError


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] in ("Z", "X")


def _wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if not _gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if not _gone(p)]
    return alive


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine on a private loop in a worker thread (independent of pytest-asyncio's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


def _pids(stack: Stack, names: tuple[str, ...] = INFRA) -> dict[str, int | None]:
    return {s.name: s.pid for s in stack.status() if s.name in names}


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, sub_stack_offset) -> Iterator[Stack]:
    st = Stack(tmp_path_factory.mktemp("stack") / "state", port_offset=sub_stack_offset("localstack"), env={})
    started = time.monotonic()
    st.up_infra()
    sys.stderr.write(f"\ncold up_infra: {time.monotonic() - started:.2f} s\n")
    try:
        yield st
    finally:
        st.down()


# --------------------------------------------------------------------------- infra


def test_up_infra_starts_all_four_reachable_with_real_clients(local_stack: Stack) -> None:
    statuses = {s.name: s for s in local_stack.status() if s.kind == "infra"}
    assert set(statuses) == set(INFRA)
    for s in statuses.values():
        assert s.state == "ready", s
        assert s.pid is not None and not _gone(s.pid), s
        assert local_stack.pid_file(s.name).is_file()
    env = local_stack.infra_env()
    port = {name: base + local_stack.port_offset for name, base in BASE_PORTS.items()}
    assert env["DATABASE_URL"] == f"postgresql://rae:rae@127.0.0.1:{port['postgres']}/rae"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{port['kafka']}"
    assert env["NEO4J_URI"] == f"bolt://127.0.0.1:{port['arcadedb']}"
    assert env["REDIS_URL"] == f"redis://127.0.0.1:{port['redis']}/0"
    assert "QDRANT_URL" not in env

    _run(_check_postgres(env["DATABASE_URL"]))
    _run(_check_kafka(env["KAFKA_BOOTSTRAP_SERVERS"]))
    _check_bolt(env)
    _check_redis(env["REDIS_URL"])


async def _check_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=10)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_user") == "rae"
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
        assert await conn.fetchval("SELECT extname FROM pg_extension WHERE extname = 'vector'") == "vector"
        assert await conn.fetchval("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector") == 1.0
    finally:
        await conn.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(url.replace("rae:rae@", "rae:wrong@"), timeout=10)


async def _check_kafka(bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = "rae.memory.v1"
    payload = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, payload, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assert topic in await consumer.topics()
        assert consumer.partitions_for_topic(topic) == {0, 1, 2}
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await asyncio.wait_for(consumer.getone(), timeout=15)
        assert record.value == payload
        assert record.key == b"k"
    finally:
        await consumer.stop()


def _check_bolt(env: dict[str, str]) -> None:
    import neo4j

    with neo4j.GraphDatabase.driver(
        env["NEO4J_URI"], auth=(env["NEO4J_USER"], env["NEO4J_PASSWORD"])
    ) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS one", database_=env["NEO4J_DATABASE"])
    assert records[0]["one"] == 1


def _check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_up_infra_again_is_a_no_op(local_stack: Stack) -> None:
    before = _pids(local_stack)
    started = time.monotonic()
    local_stack.up_infra()
    elapsed = time.monotonic() - started
    sys.stderr.write(f"\nwarm up_infra: {elapsed:.3f} s\n")
    assert _pids(local_stack) == before
    assert all(pid is not None for pid in before.values())
    assert elapsed < 5


def test_secrets_are_generated_once_per_state_dir(local_stack: Stack) -> None:
    env = local_stack.service_env()
    again = Stack(local_stack.state_dir, port_offset=local_stack.port_offset, env={}).service_env()
    for key in ("JWT_SECRET", "RAE_ADMIN_TOKEN", "NEO4J_PASSWORD"):
        assert env[key] and len(env[key]) >= 32
        assert again[key] == env[key]
    assert (local_stack.state_dir / "secrets.json").stat().st_mode & 0o077 == 0
    assert env["GATEWAY_URL"] == f"http://127.0.0.1:{BASE_PORTS['gateway'] + local_stack.port_offset}"
    assert env["EVENTS_URL"] == f"http://127.0.0.1:{BASE_PORTS['events'] + local_stack.port_offset}"


def test_env_urls_make_components_external(local_stack: Stack, tmp_path: Path, sub_stack_offset) -> None:
    infra = local_stack.infra_env()
    before = _pids(local_stack)

    # Same state dir, REDIS_URL given: redis is external, nothing is (re)started.
    partial = Stack(
        local_stack.state_dir, port_offset=local_stack.port_offset, env={"REDIS_URL": infra["REDIS_URL"]}
    )
    partial.up_infra()
    states = {s.name: s for s in partial.status()}
    assert states["redis"].state == "external"
    assert states["redis"].pid is None
    assert all(states[c].state == "ready" for c in ("postgres", "kafka", "arcadedb"))
    assert _pids(local_stack) == before

    # Fresh state dir, every URL given: nothing at all is started there.
    ext_env = dict(infra, QDRANT_URL="http://qdrant.invalid:6333")
    other = Stack(tmp_path / "other", port_offset=sub_stack_offset("localstack-external"), env=ext_env)
    other.up_infra()
    assert {s.name: s.state for s in other.status() if s.kind == "infra"} == dict.fromkeys(INFRA, "external")
    assert not any(other.run_dir.glob("*.pid"))
    assert not other.data_root.exists() or not any(other.data_root.iterdir())
    # Consumer timeouts are tuned, and producer idempotence turned off (the local broker lacks
    # InitProducerId), only for the local broker, never for someone else's Kafka.
    tuning = {"KAFKA_SESSION_TIMEOUT_MS", "KAFKA_HEARTBEAT_INTERVAL_MS", "KAFKA_ENABLE_IDEMPOTENCE"}
    assert tuning <= set(infra)
    assert infra["KAFKA_ENABLE_IDEMPOTENCE"] == "false"
    assert other.infra_env() == {k: v for k, v in ext_env.items() if k not in tuning}
    other.down()  # nothing of its own to stop; must not touch the first stack
    assert _pids(local_stack) == before


def test_services_start_wait_for_readyz_and_stop(local_stack: Stack, tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    for name in SERVICES:
        pkg = apps / f"rae_{name}"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "main.py").write_text(_TINY_APP)
    extra = {"PYTHONPATH": str(apps), "TINY_MARK": "hello"}

    local_stack.up_services(extra)
    services = {s.name: s for s in local_stack.status() if s.kind == "service"}
    assert {n: s.state for n, s in services.items()} == dict.fromkeys(SERVICES, "ready")
    import httpx

    with httpx.Client(trust_env=False, timeout=5) as client:
        body = client.get(local_stack.service_url("graph") + "/readyz").json()
    assert body == {"service": "graph", "mark": "hello", "neo4j": local_stack.infra_env()["NEO4J_URI"]}

    pids = [s.pid for s in services.values() if s.pid is not None]
    local_stack.up_services(extra)  # idempotent: same processes
    assert [s.pid for s in local_stack.status() if s.kind == "service"] == pids

    local_stack.down_services()
    assert _wait_gone(pids) == []
    assert all(s.state == "down" for s in local_stack.status() if s.kind == "service")
    assert all(s.state == "ready" for s in local_stack.status() if s.kind == "infra")

    # A service that crashes on start: clear error with its log, the others are stopped again.
    with pytest.raises(StackError, match=r"(?s)cost: process \d+ exited.*boom: cost refuses to start"):
        local_stack.up_services({**extra, "TINY_FAIL": "cost"})
    assert all(s.state == "down" for s in local_stack.status() if s.kind == "service")


_TINY_APP = textwrap.dedent(
    """
    import json
    import os


    def create_app():
        name = os.environ["RAE_SERVICE_NAME"]
        if os.environ.get("TINY_FAIL") == name:
            raise RuntimeError(f"boom: {name} refuses to start")
        body = json.dumps(
            {"service": name, "mark": os.environ["TINY_MARK"], "neo4j": os.environ["NEO4J_URI"]}
        ).encode()

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})

        return app
    """,
)


def test_stale_pid_files_and_down_with_nothing_running(tmp_path: Path, sub_stack_offset) -> None:
    st = Stack(tmp_path / "empty", port_offset=sub_stack_offset("localstack-idle"), env={})
    st.down()  # nothing there at all
    assert not st.state_dir.exists()
    st.run_dir.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    for comp in ("kafka", "memory"):
        st.pid_file(comp).write_text(dead.stdout.decode())
    assert {s.name: s.state for s in st.status()} == dict.fromkeys((*INFRA, *SERVICES), "down")
    st.down()
    assert not any(st.run_dir.glob("*.pid"))


def test_down_stops_every_process(local_stack: Stack) -> None:
    local_stack.up_infra()
    pids = [pid for pid in _pids(local_stack).values() if pid is not None]
    assert len(pids) == len(INFRA)
    local_stack.down()
    assert _wait_gone(pids, timeout=1) == []  # down() returns only once they are gone
    statuses = local_stack.status()
    assert all(s.state == "down" and s.pid is None for s in statuses)
    assert not any(local_stack.run_dir.glob("*.pid"))
    local_stack.down()  # idempotent
