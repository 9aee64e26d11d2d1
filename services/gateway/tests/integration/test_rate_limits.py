"""Per-tenant rate limits on the real Redis: buckets, headers, 429s, overrides, restarts."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
from pyrate_limiter import RateItem

from rae_common.testing import serve_app
from rae_gateway.adapters.limits import SlidingWindowBucket
from rae_gateway.main import create_app

WRITE = ("memories:write", "memories:read")


@pytest.fixture
async def limited(make_settings) -> httpx.AsyncClient:
    settings = make_settings(rate_limit_memories_create_per_min=3, rate_limit_search_per_min=2)
    async with serve_app(create_app(settings)) as client:
        yield client


def quota(response: httpx.Response) -> tuple[int, int, int]:
    return (
        int(response.headers["x-ratelimit-limit"]),
        int(response.headers["x-ratelimit-remaining"]),
        int(response.headers["x-ratelimit-reset"]),
    )


async def create_three_ways(client: httpx.AsyncClient, headers: dict[str, str]) -> list[httpx.Response]:
    return [
        await client.post("/v1/memories", json={"content": "one"}, headers=headers),
        await client.post("/v1/memories/batch", json={"items": [{"content": "two"}]}, headers=headers),
        await client.post(
            "/v1/memories/ingest", json={"text": "three", "filename": "t.txt"}, headers=headers
        ),
    ]


async def test_the_create_routes_share_one_bucket_then_429(
    limited: httpx.AsyncClient, upstream, bearer
) -> None:
    headers = bearer(*WRITE)
    responses = await create_three_ways(limited, headers)
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert [quota(r)[:2] for r in responses] == [(3, 2), (3, 1), (3, 0)]
    assert all(0 <= quota(r)[2] <= 61 for r in responses)

    refused = await limited.post("/v1/memories", json={"content": "four"}, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/rate-limited")
    assert problem["limit_name"] == "memories_create"
    assert problem["limit"] == 3
    assert "memories_create" in problem["detail"]
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 61
    assert quota(refused) == (3, 0, retry_after)
    assert len(upstream.requests) == 3

    # Reading is not limited, searching has its own bucket.
    assert "x-ratelimit-limit" not in (await limited.get("/v1/memories", headers=headers)).headers
    search = await limited.post("/v1/search/hybrid", json={"query": "tea"}, headers=headers)
    assert search.status_code == 201
    assert quota(search)[:2] == (2, 1)


async def test_two_tenants_have_separate_buckets(limited: httpx.AsyncClient, bearer) -> None:
    first, second = bearer(*WRITE), bearer(*WRITE)
    await create_three_ways(limited, first)
    assert (await limited.post("/v1/memories", json={"content": "x"}, headers=first)).status_code == 429
    other = await limited.post("/v1/memories", json={"content": "x"}, headers=second)
    assert other.status_code == 201
    assert quota(other)[:2] == (3, 2)


async def test_the_same_tenant_shares_its_bucket_across_credentials(
    limited: httpx.AsyncClient, admin_api, bearer
) -> None:
    admin = admin_api(limited)
    tenant_id = await admin.tenant()
    key = await admin.key(tenant_id, *WRITE)
    await limited.post("/v1/memories", json={"content": "x"}, headers=bearer(*WRITE, tenant=tenant_id))
    by_key = await limited.post("/v1/memories", json={"content": "y"}, headers={"X-API-Key": key["key"]})
    assert quota(by_key)[:2] == (3, 1)


async def test_a_tenant_override_applies_at_once_and_survives_a_restart(
    limited: httpx.AsyncClient, make_settings, admin_api
) -> None:
    admin = admin_api(limited)
    tenant_id = await admin.tenant()
    headers = {"X-API-Key": (await admin.key(tenant_id, *WRITE))["key"]}
    assert quota(await limited.post("/v1/memories", json={"content": "a"}, headers=headers))[:2] == (3, 2)

    await admin.set_limits(tenant_id, memories_create=2)
    last = await limited.post("/v1/memories", json={"content": "b"}, headers=headers)
    assert quota(last)[:2] == (2, 0)
    assert (await limited.post("/v1/memories", json={"content": "c"}, headers=headers)).status_code == 429

    await admin.set_limits(tenant_id, memories_create=0)
    unlimited = await limited.post("/v1/memories", json={"content": "d"}, headers=headers)
    assert unlimited.status_code == 201
    assert "x-ratelimit-limit" not in unlimited.headers

    await admin.set_limits(tenant_id, memories_create=50)
    settings = make_settings(rate_limit_memories_create_per_min=3)
    async with serve_app(create_app(settings)) as restarted:
        again = await restarted.post("/v1/memories", json={"content": "e"}, headers=headers)
        assert again.status_code == 201
        assert quota(again)[0] == 50


async def test_zero_means_unlimited(make_settings, bearer) -> None:
    async with serve_app(create_app(make_settings(rate_limit_search_per_min=0))) as client:
        for _ in range(3):
            response = await client.post("/v1/search/hybrid", json={"query": "tea"}, headers=bearer(*WRITE))
            assert response.status_code == 201
            assert "x-ratelimit-limit" not in response.headers


async def test_requests_refused_before_the_limit_do_not_spend_it(limited: httpx.AsyncClient, bearer) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    no_scope = bearer("memories:read", tenant=tenant)
    for _ in range(4):
        assert (
            await limited.post("/v1/memories", json={"content": "x"}, headers=no_scope)
        ).status_code == 403
    allowed = await limited.post("/v1/memories", json={"content": "x"}, headers=bearer(*WRITE, tenant=tenant))
    assert allowed.status_code == 201


async def test_limits_fail_open_while_redis_is_down(make_settings, bearer) -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:9/0", rate_limit_memories_create_per_min=1)
    async with serve_app(create_app(settings)) as client:
        for _ in range(2):
            response = await client.post("/v1/memories", json={"content": "x"}, headers=bearer(*WRITE))
            assert response.status_code == 201
            assert "x-ratelimit-limit" not in response.headers
        assert (await client.get("/readyz")).status_code == 503


async def test_every_answer_to_a_limited_request_carries_the_quota(make_settings, bearer) -> None:
    settings = make_settings(memory_url="http://127.0.0.1:9", rate_limit_memories_create_per_min=5)
    headers = bearer(*WRITE)
    async with serve_app(create_app(settings)) as client:
        down = await client.post("/v1/memories", json={"content": "x"}, headers=headers)
        assert down.status_code == 503
        assert quota(down)[:2] == (5, 4)
        invalid = await client.post("/v1/memories", json={"content": ""}, headers=headers)
        assert invalid.status_code == 422
        assert quota(invalid)[:2] == (5, 3)


async def test_limits_survive_redis_forgetting_its_scripts(
    limited: httpx.AsyncClient, infra_env: dict[str, str], bearer
) -> None:
    headers = bearer(*WRITE)
    assert (await limited.post("/v1/memories", json={"content": "x"}, headers=headers)).status_code == 201
    client = aioredis.Redis.from_url(infra_env["REDIS_URL"])
    try:
        await client.script_flush()  # what a Redis restart does to loaded scripts
    finally:
        await client.aclose()
    again = await limited.post("/v1/memories", json={"content": "y"}, headers=headers)
    assert again.status_code == 201
    assert quota(again)[:2] == (3, 1)


async def burst(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[int]:
    answers = await asyncio.gather(
        *(client.post("/v1/search/hybrid", json={"query": "tea"}, headers=headers) for _ in range(n))
    )
    return [a.status_code for a in answers]


async def test_a_burst_admits_exactly_the_limit_cold_warm_and_across_a_restart(
    make_settings, admin_api, bearer
) -> None:
    """100 concurrent searches against a limit of 60 admit exactly 60: from a gateway that just
    started (no script loaded, no Redis connection open), from one already warm, from two
    replicas at once, and after a restart whose window still holds earlier requests."""
    settings = make_settings(rate_limit_search_per_min=60)
    cold, warm, split, resumed = (bearer("memories:read") for _ in range(4))
    async with serve_app(create_app(settings)) as client:
        statuses = await burst(client, cold, 100)
        assert (statuses.count(201), statuses.count(429)) == (60, 40)
        statuses = await burst(client, warm, 100)
        assert (statuses.count(201), statuses.count(429)) == (60, 40)
        assert (await burst(client, resumed, 25)).count(201) == 25
    async with serve_app(create_app(settings)) as restarted, serve_app(create_app(settings)) as replica:
        statuses = await burst(restarted, resumed, 60)
        assert statuses.count(201) == 35  # 25 of the 60 were spent before the restart
        mixed = await asyncio.gather(burst(restarted, split, 50), burst(replica, split, 50))
        assert sum(s.count(201) for s in mixed) == 60


async def test_the_bucket_decides_on_redis_time_and_answers_pyrate_limiters_interface(
    infra_env: dict[str, str],
) -> None:
    client = aioredis.Redis.from_url(infra_env["REDIS_URL"])
    key = f"rae:test:{uuid.uuid4().hex}"
    script = SlidingWindowBucket.register(client)
    try:
        before_ms = int((await client.time())[0]) * 1000
        first = SlidingWindowBucket(client, script, key, 2, 60_000)
        assert await first.put(RateItem("a", 0)) and await first.put(RateItem("b", 0))
        assert first.window is not None and first.window.count == 2
        assert first.window.now_ms >= before_ms  # Redis's clock, not the item's timestamp (0)
        third = SlidingWindowBucket(client, script, key, 2, 60_000)
        assert not await third.put(RateItem("c", 0))
        assert third.failing_rate is not None and 0 < third.waiting(RateItem("c", 0)) <= 60_001
        assert await third.count() == 2
        newest = await third.peek(0)
        assert newest is not None and newest.name.startswith("b:") and newest.timestamp >= before_ms
        assert await third.leak() == 0
        await third.flush()
        assert await third.count() == 0 and await third.peek(0) is None
    finally:
        await client.delete(key)
        await client.aclose()
