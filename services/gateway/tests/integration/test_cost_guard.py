"""The cost guard against the real ml service (offline provider) and the real cost service: budgets
bind before the call, concurrent requests overshoot by at most one reservation, a budget event
refreshes the state, and governance reads stay within a tenant."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from rae_common.auth import TENANT_HEADER
from rae_common.testing import serve_app, serve_in_thread, settings_from_env
from rae_cost.main import CostSettings
from rae_cost.main import create_app as create_cost_app
from rae_gateway.domain.budget import estimate_tokens
from rae_gateway.main import GatewaySettings, create_app

from .conftest import ADMIN

PROMPT = (
    "Priya leads project Orion since March. She prefers green tea in the morning. "
    "The Orion launch moved to Friday after the design review."
)


@pytest.fixture(scope="module")
def cost_url(infra_env: dict[str, str]) -> Iterator[str]:
    with serve_in_thread(create_cost_app(settings_from_env(infra_env, CostSettings))) as url:
        yield url


@pytest.fixture
def guarded(make_settings: Callable[..., GatewaySettings], ml_url: str, cost_url: str) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        return serve_app(create_app(make_settings(ml_url=ml_url, cost_url=cost_url, **overrides)))

    return make


@pytest.fixture
async def gateway_ml(guarded: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with guarded(cost_guard_cache_s=0.2) as client:
        yield client


def generate_body(max_tokens: int = 40, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens, **extra}


async def put_budget(client: httpx.AsyncClient, tenant: str, **limits: Any) -> None:
    response = await client.put(f"/v1/governance/tenant/{tenant}/budget", json=limits, headers=ADMIN)
    assert response.status_code == 200, response.text


def tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_generate_is_refused_with_402_once_the_daily_tokens_are_spent(
    gateway_ml: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    tenant = tenant_id()
    headers = bearer("ml:use", tenant=tenant)
    limit = 3 * estimate_tokens(len(PROMPT), 40)
    await put_budget(gateway_ml, tenant, daily_tokens=limit)

    spent, remaining_seen = 0, []
    for _ in range(20):
        response = await gateway_ml.post("/v1/ml/generate", json=generate_body(), headers=headers)
        if response.status_code == 402:
            break
        assert response.status_code == 200, response.text
        spent += response.json()["usage"]["total_tokens"]
        remaining_seen.append(int(response.headers["X-Budget-Remaining-Tokens"]))
    else:
        pytest.fail("the budget never stopped the calls")

    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/budget-exceeded")
    assert (problem["period"], problem["metric"], problem["limit"]) == ("day", "tokens", limit)
    assert problem["used"] >= limit
    assert int(response.headers["Retry-After"]) > 0
    assert remaining_seen == sorted(remaining_seen, reverse=True)
    assert spent >= limit  # it stopped because the budget was spent, not earlier
    assert spent < limit + estimate_tokens(len(PROMPT), 40)


async def test_concurrent_requests_overshoot_by_at_most_one_reservation(
    gateway_ml: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    tenant = tenant_id()
    headers = bearer("ml:use", tenant=tenant)
    reservation = estimate_tokens(len(PROMPT), 60)
    limit = 2 * reservation + 10
    await put_budget(gateway_ml, tenant, daily_tokens=limit)

    answers = await asyncio.gather(
        *(gateway_ml.post("/v1/ml/generate", json=generate_body(60), headers=headers) for _ in range(12))
    )
    statuses = sorted(a.status_code for a in answers)
    # 402 once the budget is spent, 429 while it is only held by the reservations in flight.
    assert set(statuses) <= {200, 402, 429}, [a.text for a in answers if a.status_code not in (200, 402, 429)]
    used = sum(a.json()["usage"]["total_tokens"] for a in answers if a.status_code == 200)
    # All twelve started with nothing spent: without reservations all would have gone through
    # (12 calls use more than limit + one reservation). How many get in depends on timing: a
    # call that finishes before the last ones arrive trades its reservation for its (smaller)
    # usage. What the guard promises is the bound on what was spent.
    assert statuses.count(402) + statuses.count(429) >= 1
    assert used <= limit + reservation
    largest = max(a.json()["usage"]["total_tokens"] for a in answers if a.status_code == 200)
    assert 12 * largest > limit + reservation


async def test_refusals_for_reservations_in_flight_say_so_with_a_short_retry_after(
    gateway_ml: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    """20 concurrent extracts against 200 tokens a day: one extract reserves ~2,100 tokens, so
    while it runs the others are refused, though nothing is spent yet. Those refusals must say
    that requests in flight hold the budget, with a retry in seconds, not at midnight."""
    tenant = tenant_id()
    headers = bearer("ml:use", tenant=tenant)
    await put_budget(gateway_ml, tenant, daily_tokens=200)

    answers = await asyncio.gather(
        *(gateway_ml.post("/v1/ml/extract", json={"text": PROMPT}, headers=headers) for _ in range(20))
    )
    refused = [a for a in answers if a.status_code not in (200,)]
    assert any(a.status_code == 200 for a in answers), [a.text for a in answers]
    in_flight = [a for a in refused if a.json().get("used", 0) < 200]
    assert in_flight, [a.text for a in refused]  # all 20 started with nothing spent
    for answer in in_flight:
        problem = answer.json()
        assert answer.status_code == 429, answer.text
        assert problem["type"].endswith("/budget-reserved")
        assert "in flight" in problem["detail"]
        assert problem["reserved"] > 0 and problem["limit"] == 200
        assert 1 <= int(answer.headers["Retry-After"]) <= 5
    for answer in refused:
        if answer not in in_flight:  # spent for real by the calls that went through: until the day ends
            assert answer.status_code == 402 and answer.json()["type"].endswith("/budget-exceeded")


async def test_streamed_generation_passes_through_and_counts(
    gateway_ml: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    tenant = tenant_id()
    headers = bearer("ml:use", tenant=tenant)
    await put_budget(gateway_ml, tenant, daily_tokens=100_000)

    async with gateway_ml.stream(
        "POST", "/v1/ml/generate", json=generate_body(stream=True), headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        before = int(response.headers["X-Budget-Remaining-Tokens"])
        text = (await response.aread()).decode()
    assert "event: delta" in text and "event: done" in text

    second = await gateway_ml.post("/v1/ml/generate", json=generate_body(), headers=headers)
    assert second.status_code == 200, second.text
    # The streamed call's usage was counted from its `done` event before this one was admitted.
    assert int(second.headers["X-Budget-Remaining-Tokens"]) < before - second.json()["usage"]["total_tokens"]


async def test_budget_exceeded_event_refreshes_the_state_at_once(
    guarded: Callable[..., Any], ml_url: str, bearer: Callable[..., dict[str, str]]
) -> None:
    tenant = tenant_id()
    headers = bearer("ml:use", tenant=tenant)
    # A state cached for 10 minutes: only the budget.exceeded event can make the gateway re-read it.
    async with guarded(cost_guard_cache_s=600) as client:
        await put_budget(client, tenant, daily_tokens=50)
        first = await client.post("/v1/ml/generate", json=generate_body(5), headers=headers)
        assert first.status_code == 200, first.text  # caches "nothing spent yet"
        # Spend past the limit behind the gateway's back, as a service calling ml itself would.
        async with httpx.AsyncClient(base_url=ml_url, timeout=30) as ml:
            direct = await ml.post(
                "/v1/ml/generate", json=generate_body(200), headers={TENANT_HEADER: tenant}
            )
            assert direct.status_code == 200, direct.text
        deadline = time.monotonic() + 30
        while True:
            response = await client.post("/v1/ml/generate", json=generate_body(5), headers=headers)
            if response.status_code == 402:
                break
            assert response.status_code == 200, response.text
            assert time.monotonic() < deadline, "the budget.exceeded event never reached the gateway"
            await asyncio.sleep(0.2)
    assert response.json()["period"] == "day"


async def test_cost_service_down_fails_closed_unless_configured_open(
    make_settings: Callable[..., GatewaySettings], ml_url: str, bearer: Callable[..., dict[str, str]]
) -> None:
    headers = bearer("ml:use")
    down = "http://127.0.0.1:9"
    async with serve_app(create_app(make_settings(ml_url=ml_url, cost_url=down))) as client:
        closed = await client.post("/v1/ml/generate", json=generate_body(), headers=headers)
    assert closed.status_code == 503
    assert closed.json()["type"].endswith("/budget-unavailable")
    settings = make_settings(ml_url=ml_url, cost_url=down, cost_guard_fail_open=True)
    async with serve_app(create_app(settings)) as client:
        opened = await client.post("/v1/ml/generate", json=generate_body(), headers=headers)
    assert opened.status_code == 200, opened.text


async def test_governance_reads_stay_within_the_tenant(
    gateway_ml: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    mine, other = tenant_id(), tenant_id()
    await put_budget(gateway_ml, mine, daily_tokens=10_000, monthly_usd=5)
    await put_budget(gateway_ml, other, daily_tokens=20_000)
    reader = bearer("governance:read", "ml:use", tenant=mine)
    assert (await gateway_ml.post("/v1/ml/generate", json=generate_body(), headers=reader)).status_code == 200

    own = await gateway_ml.get(f"/v1/governance/tenant/{mine}/budget", headers=reader)
    assert own.status_code == 200 and own.json()["daily_tokens"] == 10_000
    for path in (f"/v1/governance/tenant/{other}/budget", f"/v1/governance/tenant/{other}"):
        refused = await gateway_ml.get(path, headers=reader)
        assert refused.status_code == 403, refused.text
        assert "20000" not in refused.text and "20,000" not in refused.text
    assert (await gateway_ml.get("/v1/governance/overview", headers=reader)).status_code == 403
    assert (await gateway_ml.get("/v1/governance/overview", headers=ADMIN)).status_code == 200
    no_scope = bearer("ml:use", tenant=mine)
    assert (await gateway_ml.get(f"/v1/governance/tenant/{mine}", headers=no_scope)).status_code == 403
    put_by_tenant = await gateway_ml.put(
        f"/v1/governance/tenant/{mine}/budget", json={"daily_tokens": 10**9}, headers=reader
    )
    assert put_by_tenant.status_code == 403

    deadline = time.monotonic() + 30
    while True:  # the usage event travels ml -> Kafka -> cost
        logs = await gateway_ml.get("/v1/cost/logs", headers=reader)
        assert logs.status_code == 200, logs.text
        if logs.json()["items"]:
            break
        assert time.monotonic() < deadline, "the call never showed up in the cost logs"
        await asyncio.sleep(0.2)
    assert {item["tenant_id"] for item in logs.json()["items"]} == {mine}


async def test_budgets_are_set_by_the_platform_and_read_by_their_own_tenant_only(
    gateway_ml: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    mine, other = tenant_id(), tenant_id()
    await put_budget(gateway_ml, mine, daily_tokens=10_000)
    await put_budget(gateway_ml, other, daily_tokens=20_000)
    tenant_admin = bearer("admin", tenant=mine)
    own = await gateway_ml.get(f"/v1/governance/tenant/{mine}/budget", headers=tenant_admin)
    assert own.status_code == 200 and own.json()["daily_tokens"] == 10_000
    assert (await gateway_ml.get(f"/v1/governance/tenant/{mine}", headers=tenant_admin)).status_code == 200
    # The budget is the platform's allowance: a tenant's admin cannot raise its own, nor touch another's.
    for tenant in (mine, other):
        refused = await gateway_ml.put(
            f"/v1/governance/tenant/{tenant}/budget", json={"daily_tokens": 10**9}, headers=tenant_admin
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("/platform-admin-required")
    foreign = await gateway_ml.get(f"/v1/governance/tenant/{other}/budget", headers=tenant_admin)
    assert foreign.status_code == 403 and "20000" not in foreign.text
    assert (await gateway_ml.get("/v1/governance/overview", headers=tenant_admin)).status_code == 403
    budgets = [
        (await gateway_ml.get(f"/v1/governance/tenant/{t}/budget", headers=ADMIN)).json()["daily_tokens"]
        for t in (mine, other)
    ]
    assert budgets == [10_000, 20_000]


@pytest.mark.parametrize(
    "budget",
    [{"daily_tokens": -1}, {"monthly_usd": -0.5}, {"warn_ratio": 1.5}, {"daily_tokens": "lots"}, {"x": 1}],
)
async def test_bad_budgets_are_422_problems(gateway_ml: httpx.AsyncClient, budget: dict[str, Any]) -> None:
    response = await gateway_ml.put(f"/v1/governance/tenant/{tenant_id()}/budget", json=budget, headers=ADMIN)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
        {"messages": [{"role": "user", "content": "hi"}], "model": "no-such-model"},
    ],
)
async def test_bad_generate_requests_are_4xx_problems(
    gateway_ml: httpx.AsyncClient, bearer: Callable[..., dict[str, str]], body: dict[str, Any]
) -> None:
    response = await gateway_ml.post("/v1/ml/generate", json=body, headers=bearer("ml:use"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
