"""Publishing outbox events again with the local stack (issue #16, finding 2): the `republish`
command, and what `up` does after it restarted the broker (`run/outbox-republish-pending.json`).

A stack of the tests' own (slot `localstack-republish`) runs only the broker; Postgres, Redis and
the Bolt server are the session's. The service asked is the real cost service, whose outbox
holds events this test writes; where all seven services must run (`up`), the others are tiny
stand-ins that record what they were asked.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rae_common.db import create_pool
from rae_common.events import Envelope, EventData
from rae_common.outbox import add_to_outbox
from rae_common.testing import eventually, serve_in_thread, settings_from_env
from rae_cost.main import CostSettings
from rae_cost.main import create_app as create_cost_app
from rae_localstack import EXTERNAL_VARS, OUTBOX_SERVICES, SERVICES, Stack

ROOT = Path(__file__).resolve().parents[3]
TOPIC = "rae.cost.v1"
PENDING = "outbox-republish-pending.json"
# The session's servers this stack takes as external: only its broker is its own.
SHARED = ("DATABASE_URL", "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE", "REDIS_URL")


@pytest.fixture
def shared_env(infra_env: dict[str, str]) -> dict[str, str]:
    return {k: infra_env[k] for k in SHARED}


@pytest.fixture
def broker_stack(tmp_path: Path, shared_env: dict[str, str], sub_stack_offset) -> Iterator[Stack]:
    stack = Stack(tmp_path / "state", port_offset=sub_stack_offset("localstack-republish"), env=shared_env)
    stack.up_infra()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture
async def db(shared_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(shared_env["DATABASE_URL"], min_size=1, max_size=2)  # the services' codecs
    yield pool
    await pool.close()


def _cost_settings(stack: Stack) -> CostSettings:
    return settings_from_env(stack.infra_env(), CostSettings)


def _cli_env(shared_env: dict[str, str], **extra: str) -> dict[str, str]:
    """This process' environment without anything naming a server or a stack, plus `extra`."""
    names = {*EXTERNAL_VARS.values(), *SHARED, "KAFKA_BOOTSTRAP_SERVERS"}
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("RAE_LOCAL")}
    return {**env, **shared_env, **extra}


def _cli(stack: Stack, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m rae_localstack <args>` for this stack, as an operator types it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "rae_localstack",
            *args,
            "--state-dir",
            str(stack.state_dir),
            "--port-offset",
            str(stack.port_offset),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def _write_events(db: asyncpg.Pool, n: int) -> list[uuid.UUID]:
    """Queue `n` events in the cost service's outbox, as its own changes do (its relay sends them)."""
    envelopes = [
        Envelope(
            type="budget.republish_test",
            tenant_id="t-republish",
            producer="cost",
            idempotency_key=uuid.uuid4().hex,
            data=EventData(),
        )
        for _ in range(n)
    ]
    async with db.acquire() as conn, conn.transaction():
        await add_to_outbox(conn, "cost", *envelopes)
    return [e.id for e in envelopes]


async def _published(db: asyncpg.Pool, ids: list[uuid.UUID]) -> datetime:
    """When the relay last published these events (once it has published every one)."""

    async def sent() -> datetime | None:
        rows = await db.fetch("SELECT sent_at FROM cost.outbox WHERE id = ANY($1::uuid[])", ids)
        times = [r["sent_at"] for r in rows]
        return max(times) if len(times) == len(ids) and None not in times else None

    return await eventually(sent, 30, f"{len(ids)} cost events published")


async def _drained(db: asyncpg.Pool) -> None:
    """Nothing earlier tests left unsent in the cost outbox is still waiting for the relay."""

    async def empty() -> bool | None:
        return (
            True if not await db.fetchval("SELECT count(*) FROM cost.outbox WHERE sent_at IS NULL") else None
        )

    await eventually(empty, 30, "the cost outbox drained")


async def _on_broker(bootstrap: str, ids: list[uuid.UUID]) -> Counter[uuid.UUID]:
    """How many times each of `ids` is on the broker's cost topic."""
    wanted = {str(i) for i in ids}
    seen: Counter[uuid.UUID] = Counter()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or ()]
        if not partitions:
            await consumer.topics()
            partitions = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    event_id = json.loads(record.value)["id"]
                    if event_id in wanted:
                        seen[uuid.UUID(event_id)] += 1
    finally:
        await consumer.stop()
    return seen


async def _counted(bootstrap: str, ids: list[uuid.UUID], times: int) -> Counter[uuid.UUID]:
    async def enough() -> Counter[uuid.UUID] | None:
        seen = await _on_broker(bootstrap, ids)
        return seen if all(seen[i] >= times for i in ids) else None

    return await eventually(enough, 30, f"{len(ids)} events on {TOPIC} {times} times")


# --------------------------------------------------------------------------- the command


async def test_republish_sends_the_range_again_and_prints_what_each_service_queued(
    broker_stack: Stack, db: asyncpg.Pool, shared_env: dict[str, str]
) -> None:
    bootstrap = broker_stack.infra_env()["KAFKA_BOOTSTRAP_SERVERS"]
    with serve_in_thread(create_cost_app(_cost_settings(broker_stack)), port=broker_stack.port("cost")):
        await _drained(db)
        before = await _write_events(db, 2)
        since = await _published(db, before) + timedelta(microseconds=1)
        inside = await _write_events(db, 3)
        until = await _published(db, inside) + timedelta(microseconds=1)
        after = await _write_events(db, 2)
        await _published(db, after)

        done = await asyncio.to_thread(
            _cli,
            broker_stack,
            _cli_env(shared_env),
            "republish",
            "--since",
            since.isoformat(),
            "--until",
            until.isoformat(),
            "--services",
            "cost",
        )
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout == "published again: cost 3 (outbox events)\n"
        # The relay sent the three of the range once more, and only those.
        await _counted(bootstrap, inside, 2)
        assert await _on_broker(bootstrap, before + inside + after) == {
            **dict.fromkeys(inside, 2),
            **dict.fromkeys(before + after, 1),
        }


async def test_republish_names_each_service_that_does_not_answer_and_fails(
    broker_stack: Stack, shared_env: dict[str, str]
) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()  # nothing to send again
    with serve_in_thread(create_cost_app(_cost_settings(broker_stack)), port=broker_stack.port("cost")):
        done = await asyncio.to_thread(
            _cli,
            broker_stack,
            _cli_env(shared_env),
            "republish",
            "--since",
            future,
            "--services",
            "graph,cost",
        )
    assert done.returncode == 1, done
    assert done.stdout == "published again: cost 0 (outbox events)\n"
    graph = broker_stack.service_url("graph")
    assert done.stderr.splitlines() == [
        f"rae_localstack republish: graph: no service answers at {graph} (is the stack up at this "
        "--state-dir / --port-offset?)"
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--since", "2026-12-05T00:00:00Z", "--until", "2026-12-04T00:00:00Z"], "--since is after --until"),
        (["--since", "yesterday"], "argument --since: not an RFC 3339 time: 'yesterday'"),
        (
            ["--until", "2026-13-01T00:00:00Z"],
            "argument --until: not an RFC 3339 time: '2026-13-01T00:00:00Z'",
        ),
        (["--services", "gateway"], "argument --services: the services with an outbox are"),
        (["--services", ","], "argument --services: the services with an outbox are"),
    ],
)
def test_republish_refuses_bad_arguments_before_asking_anyone(
    tmp_path: Path, sub_stack_offset, shared_env: dict[str, str], args: list[str], error: str
) -> None:
    stack = Stack(tmp_path / "state", port_offset=sub_stack_offset("localstack-idle"), env={})
    done = _cli(stack, _cli_env(shared_env), "republish", *args)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert error in done.stderr.splitlines()[-1], done.stderr
    assert not stack.state_dir.exists(), "nothing was asked, nothing written"


# --------------------------------------------------------------------------- after a broker restart

# What every service but cost is here: ready at once, and answers a request to publish again with
# a count of its own, recording the request in TINY_DIR.
_TINY_APP = textwrap.dedent(
    """
    import json
    import os
    from pathlib import Path

    REQUEUED = {"memory": 4, "ml": 0, "graph": 1, "reflection": 0, "events": 2}


    def create_app():
        name = os.environ["RAE_SERVICE_NAME"]

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            answer = {"service": name}
            if scope["path"] == "/v1/outbox/republish":
                asked = json.loads(body)
                with (Path(os.environ["TINY_DIR"]) / f"{name}.json").open("a") as fh:
                    fh.write(json.dumps(asked) + "\\n")
                answer = {**asked, "service": name, "requeued": REQUEUED[name]}
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

        return app
    """,
)


@pytest.fixture
def tiny_services(tmp_path: Path) -> tuple[Path, Path]:
    """(PYTHONPATH dir of stand-ins for every service but cost, dir where they record requests)."""
    apps, asked = tmp_path / "apps", tmp_path / "asked"
    asked.mkdir()
    for name in SERVICES:
        if name != "cost":
            pkg = apps / f"rae_{name}"
            pkg.mkdir(parents=True)
            (pkg / "__init__.py").write_text("")
            (pkg / "main.py").write_text(_TINY_APP)
    return apps, asked


def _asked(asked: Path) -> dict[str, list[dict[str, str | None]]]:
    return {p.stem: [json.loads(line) for line in p.read_text().splitlines()] for p in asked.glob("*.json")}


async def test_a_broker_restarted_while_the_services_are_down_is_published_again_by_up(
    broker_stack: Stack, db: asyncpg.Pool, shared_env: dict[str, str], tiny_services: tuple[Path, Path]
) -> None:
    stack = broker_stack
    pending = stack.run_dir / PENDING
    first_start = datetime.fromisoformat((stack.run_dir / "kafka.started").read_text())
    bootstrap = stack.infra_env()["KAFKA_BOOTSTRAP_SERVERS"]
    # The cost service publishes to the first broker, which is then lost with the whole stack.
    # Only cost ran after that broker started: it alone published again then (as `up` has it do),
    # so only what it sent since must be sent again; the others, all they kept.
    with serve_in_thread(create_cost_app(_cost_settings(stack)), port=stack.port("cost")):
        assert set(await asyncio.to_thread(stack.republish_pending)) == {"cost"}
        await _drained(db)
        lost = await _write_events(db, 3)
        await _published(db, lost)
    assert (await _on_broker(bootstrap, lost)) == dict.fromkeys(lost, 1)
    apps, asked = tiny_services
    env = _cli_env(shared_env, PYTHONPATH=str(apps), TINY_DIR=str(asked))
    assert (await asyncio.to_thread(_cli, stack, env, "down")).returncode == 0

    infra = await asyncio.to_thread(_cli, stack, env, "up", "--infra-only")
    assert infra.returncode == 0, infra.stderr
    assert _asked(asked) == {}, "no service runs"
    # The operator hears what is still to come.
    assert _line(infra.stdout, "the broker (re)started") == (
        "the broker (re)started; to publish again once `up` has them ready: "
        "cost, events, graph, memory, ml, reflection"
    )
    since = first_start - timedelta(minutes=1)
    others = [name for name in OUTBOX_SERVICES if name != "cost"]
    assert json.loads(pending.read_text()) == {**dict.fromkeys(others), "cost": since.isoformat()}
    assert await _on_broker(bootstrap, lost) == {}, "the new broker has none of them"

    up = await asyncio.to_thread(_cli, stack, env, "up")
    assert up.returncode == 0, up.stderr
    assert not pending.exists()
    assert _asked(asked) == {name: [{"since": None, "until": None}] for name in others}
    counts = {name: int(n) for name, n in re.findall(r"(\w+) (\d+)", _line(up.stdout, "the broker"))}
    assert counts.pop("cost") >= len(lost)
    assert counts == {"memory": 4, "ml": 0, "graph": 1, "reflection": 0, "events": 2}
    await _counted(bootstrap, lost, 1)  # on the new broker

    # Once done, a later `up` leaves the services alone.
    again = await asyncio.to_thread(_cli, stack, env, "up")
    assert again.returncode == 0, again.stderr
    assert "published again" not in again.stdout
    assert len(_asked(asked)["memory"]) == 1


def _line(text: str, start: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert len(lines) == 1, text
    return lines[0]
