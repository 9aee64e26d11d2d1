"""The local broker stopped and restarted in the middle of a stream of writes (issue #16, finding 2).

The broker keeps its log in memory, so a restart loses every record it held: those the engine had
not read yet, the consumer group's committed offsets, the topics. The real memory service writes,
the real events service consumes, and the stack manager restarts the broker as an operator's
`make up` would; every `memory.created` must still reach the engine's event log exactly once, and
what is written after the restart must be delivered without restarting anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from rae_common.testing import eventually, serve_in_thread, settings_from_env
from rae_events.main import create_app as create_events_app
from rae_localstack import Stack
from rae_memory.main import MemorySettings
from rae_memory.main import create_app as create_memory_app

from .conftest import fast_settings

_log = logging.getLogger("rae.tests.broker_restart")

FLOWING = 20  # writes the engine handles before it stalls
BEFORE = 80  # writes before the broker stops, in all (the last ones published, not yet consumed)
DURING = 60  # writes while it is down (the outbox holds them)
AFTER = 100  # writes once it is back


@pytest.fixture
def restarted_broker(tmp_path: Path, infra_env: dict[str, str], sub_stack_offset) -> Iterator[Stack]:
    """A stack of this test's own whose only local server is the broker; the services it would
    run are the in-process ones below, on its ports."""
    others = {k: infra_env[k] for k in ("DATABASE_URL", "NEO4J_URI", "REDIS_URL")}
    stack = Stack(tmp_path / "broker", port_offset=sub_stack_offset("broker-restart"), env=others)
    stack.up_infra()
    yield stack
    stack.down()


@dataclass
class Writes:
    """Memories written, each with the phase it was written in."""

    phase: str = "before"
    memory_ids: dict[str, list[str]] = field(
        default_factory=lambda: {"before": [], "during": [], "after": []}
    )
    after_started: float | None = None

    def count(self, phase: str | None = None) -> int:
        if phase is None:
            return sum(len(ids) for ids in self.memory_ids.values())
        return len(self.memory_ids[phase])


@contextlib.asynccontextmanager
async def writing(memories: httpx.AsyncClient, tenant: str, writes: Writes) -> AsyncIterator[None]:
    """Write memories one after another, each labelled with the phase it began in, until the
    block ends (the write in flight then finishes: every memory written is counted)."""
    done = asyncio.Event()

    async def loop() -> None:
        n = 0
        while not done.is_set():
            phase = writes.phase
            answer = await memories.post(
                "/v1/memories", headers={"X-Tenant-ID": tenant}, json={"content": f"Fault-test note {n}."}
            )
            assert answer.status_code == 201, answer.text
            writes.memory_ids[phase].append(answer.json()["id"])
            n += 1

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        done.set()
        await task


@contextlib.asynccontextmanager
async def engine_stalled(db: asyncpg.Pool) -> AsyncIterator[None]:
    """Hold the engine's event log against writes: the engine stops in the middle of a batch, as
    a slow consumer would, and what the broker takes meanwhile is acknowledged but not consumed."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE events.event_log IN SHARE MODE")
        yield


async def logged(db: asyncpg.Pool, tenant: str) -> list[uuid.UUID]:
    """The `memory.created` event ids in the engine's event log, one per row (duplicates kept)."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant)
        rows = await conn.fetch(
            "SELECT event_id FROM events.event_log WHERE tenant_id = $1 AND type = 'memory.created'", tenant
        )
    return [row["event_id"] for row in rows]


async def event_ids(db: asyncpg.Pool, tenant: str) -> dict[str, uuid.UUID]:
    """memory id -> id of the `memory.created` the memory service queued for it."""
    rows = await db.fetch(
        """SELECT id, payload::jsonb -> 'data' ->> 'memory_id' AS memory_id FROM memory.outbox
           WHERE key = $1 AND payload::jsonb ->> 'type' = 'memory.created'""",
        tenant,
    )
    return {row["memory_id"]: row["id"] for row in rows}


async def unsent(db: asyncpg.Pool, tenant: str, memory_ids: list[str]) -> int:
    """How many memory.created of these memories the relay has not published."""
    count: int = await db.fetchval(
        """SELECT count(*) FROM memory.outbox WHERE key = $1 AND sent_at IS NULL
           AND payload::jsonb -> 'data' ->> 'memory_id' = ANY($2::text[])""",
        tenant,
        memory_ids,
    )
    return count


async def wait_for_writes(writes: Writes, phase: str, n: int) -> None:
    async def enough() -> bool | None:
        return True if writes.count(phase) >= n else None

    await eventually(enough, 60, f"{n} writes {phase} the outage", interval_s=0.02)


async def test_a_broker_restart_during_writes_delivers_every_memory_once_and_resumes(
    restarted_broker: Stack, infra_env: dict[str, str], ml_url: str, db: asyncpg.Pool, tenant: str
) -> None:
    broker = restarted_broker
    bootstrap = broker.infra_env()["KAFKA_BOOTSTRAP_SERVERS"]
    # A short retention bounds what the services publish again to this test's few minutes,
    # whatever earlier tests left in the session's outboxes.
    memory_settings = settings_from_env(
        infra_env,
        MemorySettings,
        ml_url=ml_url,
        kafka_bootstrap_servers=bootstrap,
        outbox_retention_hours=0.05,
    )
    events_settings = fast_settings(infra_env, kafka_bootstrap_servers=bootstrap, outbox_retention_hours=0.05)
    writes = Writes()
    timings: dict[str, float] = {}
    started = time.monotonic()
    with (
        serve_in_thread(create_memory_app(memory_settings), port=broker.port("memory")) as memory_url,
        serve_in_thread(create_events_app(events_settings), port=broker.port("events")),
    ):
        # What `up_services` does once the services answer: they publish again after the
        # broker's first start, so the restart below asks only for what was sent since.
        await asyncio.to_thread(broker.republish_pending)
        async with httpx.AsyncClient(base_url=memory_url, timeout=30) as memories:
            async with writing(memories, tenant, writes):

                async def flowing() -> bool | None:
                    return True if len(await logged(db, tenant)) >= FLOWING else None

                await eventually(flowing, 30, f"the engine to handle {FLOWING} memories")
                async with engine_stalled(db):
                    await wait_for_writes(writes, "before", BEFORE)

                    async def published() -> bool | None:
                        first = writes.memory_ids["before"][:BEFORE]
                        ids = await event_ids(db, tenant)
                        done = all(m in ids for m in first)
                        return True if done and not await unsent(db, tenant, first) else None

                    await eventually(published, 30, "the writes before the outage on the broker")
                    stopping = time.monotonic()
                    await asyncio.to_thread(broker.down)
                    writes.phase = "during"
                    timings["stop"] = time.monotonic() - stopping
                    await wait_for_writes(writes, "during", DURING)
                    restarting = time.monotonic()
                    await asyncio.to_thread(broker.up_infra)
                    writes.phase = "after"
                    back = time.monotonic()
                    timings["restart"] = back - restarting

                async def resumed() -> float | None:
                    ids = await event_ids(db, tenant)
                    after = {ids[m] for m in writes.memory_ids["after"] if m in ids}
                    return time.monotonic() - back if after & set(await logged(db, tenant)) else None

                resuming = asyncio.create_task(
                    eventually(resumed, 30, "a write made after the restart to be delivered", interval_s=0.05)
                )
                try:
                    await wait_for_writes(writes, "after", AFTER)
                except BaseException:
                    resuming.cancel()
                    raise

        assert set(broker.republished) == {"memory", "events"}, "the running services published again"
        assert sorted(broker.pending_republish()) == ["cost", "graph", "ml", "reflection"], "the others wait"
        ids = await event_ids(db, tenant)
        assert len(ids) == writes.count(), "every write queued its memory.created"

        async def everything() -> list[uuid.UUID] | None:
            found = await logged(db, tenant)
            return found if set(found) >= set(ids.values()) else None

        first_after: float | None = None
        try:
            first_after = await resuming
            found = await eventually(everything, 30, "every memory.created in the event log")
            timings["all"] = time.monotonic() - back
        finally:
            seen = set(await logged(db, tenant))

            missing = [sum(1 for m in writes.memory_ids[p] if ids[m] not in seen) for p in writes.memory_ids]
            _log.warning(
                "broker restart: %d writes (%d before, %d during, %d after the outage); %d of %d events "
                "logged (missing: %d before, %d during, %d after); stopping the broker took %.1f s, "
                "restarting it %.1f s; first post-restart write delivered %s s after the broker was back, "
                "every event %s s after; events published again: %s; test took %.1f s",
                writes.count(),
                writes.count("before"),
                writes.count("during"),
                writes.count("after"),
                len(seen & set(ids.values())),
                len(ids),
                *missing,
                timings.get("stop", -1),
                timings.get("restart", -1),
                "never" if first_after is None else f"{first_after:.2f}",
                f"{timings['all']:.2f}" if "all" in timings else "never",
                broker.republished,
                time.monotonic() - started,
            )
    assert sorted(found) == sorted(ids.values()), "each memory.created exactly once"
