"""SIGTERM while searches are in flight stops the memory service within its grace period
(issue #16: the service, its pool wedged by concurrent searches, ignored SIGTERM).

Two loads: searches that finish (the real ml service), and searches stuck for good (an ml service
that never answers: each holds its vector transaction open, waiting for its query's embedding).
The process runs as the local stack runs it: uvicorn and the app factory, the stack's environment.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from rae_common.testing import eventually
from rae_common.testing_processes import ServiceProcess, service_process, silent_server
from rae_localstack._stack import STOP_GRACE_S

POOL_SIZE = 10
SEARCHES = 60


@pytest.fixture(params=["ml-answering", "ml-silent"])
def silent_ml(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the memory service embeds with the real ml service; else the URL of one that never
    answers."""
    if request.param == "ml-answering":
        yield None
        return
    with silent_server() as silent:
        yield silent.url


@pytest.fixture
def memory_process(
    infra_env: dict[str, str], ml_url: str, silent_ml: str | None, tmp_path: Path
) -> Iterator[ServiceProcess]:
    env = {
        **infra_env,
        "ML_URL": silent_ml or ml_url,
        "DATABASE_POOL_MIN": "1",
        "DATABASE_POOL_MAX": str(POOL_SIZE),
        "LOG_LEVEL": "WARNING",
    }
    with service_process("rae_memory.main:create_app", env, tmp_path / "memory.log") as process:
        yield process


async def busy_sessions(database_url: str) -> int:
    """Sessions of the database working or holding a transaction open (not this one)."""
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND backend_type = 'client backend'
                 AND state <> 'idle' AND pid <> pg_backend_pid()"""
        )
        return count
    finally:
        await conn.close()


async def test_sigterm_during_concurrent_searches_stops_the_service_within_its_grace(
    memory_process: ServiceProcess,
    infra_env: dict[str, str],
    silent_ml: str | None,
) -> None:
    memory = memory_process
    process, url = memory.process, memory.url
    limits = httpx.Limits(max_connections=SEARCHES + 5)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def ready() -> bool | None:
            assert process.poll() is None, memory.tail()
            try:
                return True if (await client.get("/readyz")).status_code == 200 else None
            except httpx.TransportError:
                return None

        await eventually(ready, timeout_s=60, what="the memory process to be ready")
        tenant = {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}
        if silent_ml is None:
            items = [{"content": f"Note {n}: the team discussed topic {n % 7} at length."} for n in range(50)]
            stored = await client.post("/v1/memories/batch", json={"items": items}, headers=tenant)
            assert stored.status_code == 201, stored.text

        async def search(n: int) -> int | None:
            body = {"query": f"What was said about topic {n % 7} in meeting {uuid.uuid4().hex[:6]}?", "k": 5}
            try:
                return (await client.post("/v1/search/hybrid", json=body, headers=tenant)).status_code
            except httpx.TransportError:
                return None  # the stopping server closed this one: fine, it has to stop

        tasks = [asyncio.create_task(search(n)) for n in range(SEARCHES)]
        try:

            async def pool_busy() -> bool | None:
                return True if await busy_sessions(infra_env["DATABASE_URL"]) >= POOL_SIZE // 2 else None

            await eventually(pool_busy, timeout_s=30, what="the searches to occupy the pool", interval_s=0.02)
            in_flight = sum(1 for t in tasks if not t.done())
            stopped_after = await memory.stop_within(STOP_GRACE_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert in_flight > 0, "every search had finished before the signal: nothing was under load"
    assert stopped_after is not None, (
        f"still running {STOP_GRACE_S:g} s after SIGTERM with {in_flight} searches in flight\n"
        + memory.tail()
    )
    print(  # noqa: T201 (the figure the issue asks for, shown with -s)
        f"\n{'stuck' if silent_ml else 'running'} searches: SIGTERM with {in_flight} of {SEARCHES} in "
        f"flight, stopped after {stopped_after:.2f} s (grace {STOP_GRACE_S:g} s), "
        f"exit code {process.returncode}"
    )
