"""POST /v1/admin/outbox/republish: platform administration fans out to the services' outboxes
(here the real memory service; the others are down)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from rae_common.testing import eventually, serve_app
from rae_gateway.main import GatewaySettings, create_app

from .conftest import ADMIN, DOWN

PATH = "/v1/admin/outbox/republish"


@pytest.fixture
async def gateway_to_memory(
    make_settings: Callable[..., GatewaySettings], memory_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(memory_url=memory_url, **{f"{s}_url": DOWN for s in ("ml", "events")})
    async with serve_app(create_app(settings)) as client:
        yield client


@pytest.fixture
async def db(infra_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(infra_env["DATABASE_URL"], min_size=1, max_size=2)
    yield pool
    await pool.close()


async def sent_at(db: asyncpg.Pool, memory_id: str) -> datetime | None:
    value: datetime | None = await db.fetchval(
        "SELECT sent_at FROM memory.outbox WHERE payload::jsonb -> 'data' ->> 'memory_id' = $1", memory_id
    )
    return value


async def test_the_memory_service_publishes_its_events_of_the_range_again(
    gateway_to_memory: httpx.AsyncClient, memory_url: str, db: asyncpg.Pool
) -> None:
    async with httpx.AsyncClient(base_url=memory_url) as memory:
        created = await memory.post(
            "/v1/memories",
            headers={"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"},
            json={"content": "Republish me."},
        )
    assert created.status_code == 201, created.text
    memory_id = created.json()["id"]
    first = await eventually(lambda: sent_at(db, memory_id), 30, "the memory.created published")

    body: dict[str, Any] = {"since": (first - timedelta(microseconds=1)).isoformat(), "services": ["memory"]}
    answer = await gateway_to_memory.post(PATH, headers=ADMIN, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["requeued"]["memory"] >= 1

    async def published_again() -> datetime | None:
        again = await sent_at(db, memory_id)
        return again if again is not None and again > first else None

    again = await eventually(published_again, 30, "the memory.created published again")

    until_before = {"until": (first - timedelta(hours=1)).isoformat(), "services": ["memory"]}
    before = await gateway_to_memory.post(PATH, headers=ADMIN, json=until_before)
    assert before.status_code == 200, before.text
    assert await sent_at(db, memory_id) == again, "an event outside the range is left alone"


async def test_a_service_that_cannot_answer_is_named_with_what_the_others_did(
    gateway_to_memory: httpx.AsyncClient,
) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    answer = await gateway_to_memory.post(
        PATH, headers=ADMIN, json={"since": future, "services": ["memory", "graph"]}
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["requeued"] == {"memory": 0}
    assert set(problem["failed"]) == {"graph"}
    assert answer.headers["retry-after"]


@pytest.mark.parametrize(
    "body",
    [
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"services": ["gateway"]},
        {"services": []},
        {"since": "yesterday"},
        {"window": "1h"},
    ],
)
async def test_a_bad_request_is_a_422(gateway_to_memory: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await gateway_to_memory.post(PATH, headers=ADMIN, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_only_platform_administration_publishes_again(
    gateway_to_memory: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    assert (await gateway_to_memory.post(PATH, json={})).status_code == 401
    tenant_admin = await gateway_to_memory.post(PATH, headers=bearer("admin"), json={})
    assert tenant_admin.status_code == 403, tenant_admin.text
