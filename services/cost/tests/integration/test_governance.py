"""Budgets and the governance API: each budget level is announced once per period and metric."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from rae_common.events import BudgetExceeded, BudgetWarning, LlmUsage


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def summary(events) -> list[tuple]:
    return [(e.type, e.data.period, e.data.period_start, e.data.metric) for e in events]


async def test_a_budget_never_set_is_unlimited(cost, tenant: str) -> None:
    response = await cost.client.get(f"/v1/governance/tenant/{tenant}/budget")
    assert response.status_code == 200
    assert response.json() == {
        "tenant_id": tenant,
        "daily_tokens": None,
        "monthly_tokens": None,
        "daily_usd": None,
        "monthly_usd": None,
        "warn_ratio": 0.8,
        "updated_at": None,
    }
    governance = await cost.governance(tenant)
    assert governance["budget"] is None
    assert (governance["exceeded"], governance["exceeded_limits"]) == (False, [])
    assert governance["utilization"] == 0
    assert governance["usage"] == []
    day = governance["current"]["day"]
    assert day["start"] == f"{cost.now.date().isoformat()}T00:00:00Z"
    assert (day["tokens"], day["limit_tokens"], day["remaining_usd"]) == (0, None, None)


async def test_a_put_replaces_the_whole_budget(cost, tenant: str) -> None:
    first = await cost.put_budget(
        tenant, daily_tokens=1000, monthly_tokens=20000, daily_usd=1.5, monthly_usd=30, warn_ratio=0.9
    )
    assert first == {
        "tenant_id": tenant,
        "daily_tokens": 1000,
        "monthly_tokens": 20000,
        "daily_usd": 1.5,
        "monthly_usd": 30.0,
        "warn_ratio": 0.9,
        "updated_at": first["updated_at"],
    }
    assert first["updated_at"] is not None
    assert (await cost.client.get(f"/v1/governance/tenant/{tenant}/budget")).json() == first
    second = await cost.put_budget(tenant, monthly_usd=12.25)
    assert (second["daily_tokens"], second["monthly_tokens"], second["daily_usd"]) == (None, None, None)
    assert (second["monthly_usd"], second["warn_ratio"]) == (12.25, 0.8)
    assert (await cost.governance(tenant))["budget"] == second


@pytest.mark.parametrize(
    "body",
    [
        {"daily_tokens": -1},
        {"monthly_usd": -5},
        {"warn_ratio": 0},
        {"warn_ratio": 1.5},
        {"daily_usd": "lots"},
        {"daily_tokens": 10, "weekly_tokens": 70},
        [],
    ],
)
async def test_bad_budgets_are_422_problems(cost, tenant: str, body) -> None:
    response = await cost.client.put(f"/v1/governance/tenant/{tenant}/budget", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (await cost.client.get(f"/v1/governance/tenant/{tenant}/budget")).json()["updated_at"] is None


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/governance/tenant/bad%20id/budget", {}),
        ("/v1/governance/tenant/" + "x" * 65, {}),
        ("/v1/governance/tenant/-dash", {}),
        ("/v1/governance/tenant/acme", {"since": "2024-05-02", "until": "2024-05-01"}),
        ("/v1/governance/tenant/acme", {"since": "2022-01-01", "until": "2024-01-01"}),
        ("/v1/governance/tenant/acme", {"since": "last week"}),
        ("/v1/governance/overview", {"cursor": "garbage"}),
        ("/v1/governance/overview", {"limit": 0}),
    ],
)
async def test_bad_governance_queries_are_422_problems(cost, path: str, params: dict) -> None:
    response = await cost.client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_each_level_is_announced_once_per_period(cost, tenant: str) -> None:
    first, second = date(2021, 3, 10), date(2021, 3, 11)
    await cost.put_budget(tenant, daily_tokens=1000)

    def tokens(n: int, day: date):
        return cost.usage(tenant, prompt=n, completion=0, at=at(day))

    await cost.publish(tokens(500, first), tokens(350, first))  # 850: warning
    await cost.publish(tokens(100, first), tokens(60, first))  # 1010: exceeded
    await cost.publish(tokens(10, first), tokens(5000, first))  # nothing more that day
    await cost.publish(tokens(900, second), tokens(100, second))  # a new day: both again
    events = await cost.budget_events(tenant, 4)

    assert summary(events) == [
        ("budget.warning", "day", first, "tokens"),
        ("budget.exceeded", "day", first, "tokens"),
        ("budget.warning", "day", second, "tokens"),
        ("budget.exceeded", "day", second, "tokens"),
    ]
    warning, exceeded = events[0].data, events[1].data
    assert isinstance(warning, BudgetWarning) and isinstance(exceeded, BudgetExceeded)
    assert (warning.limit, warning.used, warning.ratio) == (1000, 850, 0.85)
    assert (exceeded.used, exceeded.ratio) == (1010, 1.01)
    assert all(e.tenant_id == tenant and e.producer == "cost" for e in events)
    assert len({e.idempotency_key for e in events}) == 4


async def test_a_budget_lowered_under_the_usage_is_announced_at_once(cost, tenant: str) -> None:
    await cost.consume(cost.usage(tenant, prompt=80, completion=20, cost=0.5))
    await cost.put_budget(tenant, daily_usd=0.4, monthly_tokens=1000)
    governance = await cost.governance(tenant)
    assert governance["exceeded"] is True
    assert governance["exceeded_limits"] == ["daily_usd"]
    assert governance["utilization"] == 1.25
    day, month = governance["current"]["day"], governance["current"]["month"]
    assert (day["usd"], day["limit_usd"], day["remaining_usd"], day["utilization"]) == (0.5, 0.4, 0, 1.25)
    assert (month["tokens"], month["limit_tokens"], month["remaining_tokens"]) == (100, 1000, 900)
    assert month["utilization"] == 0.1

    # The same budget again announces nothing new; a monthly USD limit then does.
    await cost.put_budget(tenant, daily_usd=0.4, monthly_tokens=1000)
    await cost.put_budget(tenant, daily_usd=0.4, monthly_tokens=1000, monthly_usd=0.5)
    events = await cost.budget_events(tenant, 4)
    today, month_start = cost.now.date(), cost.now.date().replace(day=1)
    assert summary(events) == [
        ("budget.warning", "day", today, "usd"),
        ("budget.exceeded", "day", today, "usd"),
        ("budget.warning", "month", month_start, "usd"),
        ("budget.exceeded", "month", month_start, "usd"),
    ]


async def test_concurrent_usage_announces_each_level_once(cost, tenant: str) -> None:
    """Calls of different models recorded at the same time still see each other's usage."""
    service = cost.app.state.rae.get("service")
    day = date(2021, 6, 1)
    await cost.put_budget(tenant, daily_tokens=1000)
    calls = [cost.usage(tenant, prompt=125, completion=0, model=f"m{i}", at=at(day)) for i in range(10)]
    same_request = [cost.usage(tenant, request_id="twice", prompt=1, at=at(day)) for _ in range(4)]

    def record(envelope):
        assert isinstance(envelope.data, LlmUsage)
        return service.record(envelope, envelope.data)

    outcomes = await asyncio.gather(*(record(e) for e in calls + same_request))
    assert outcomes.count(True) == 11
    marker = cost.usage(tenant, prompt=1000, completion=0, at=at(day + timedelta(days=1)))
    assert await record(marker)

    events = await cost.budget_events(tenant, 4)
    assert summary(events) == [
        ("budget.warning", "day", day, "tokens"),
        ("budget.exceeded", "day", day, "tokens"),
        ("budget.warning", "day", day + timedelta(days=1), "tokens"),
        ("budget.exceeded", "day", day + timedelta(days=1), "tokens"),
    ]
    usage = (await cost.governance(tenant, since=day.isoformat(), until=day.isoformat()))["usage"]
    assert sum(row["input_tokens"] for row in usage) == 1251
    assert sum(row["calls"] for row in usage) == 11


async def test_usage_by_day_and_model_within_since_until(cost, tenant: str) -> None:
    today = cost.now.date()
    earlier, long_ago = today - timedelta(days=3), today - timedelta(days=40)
    await cost.consume(
        cost.usage(tenant, prompt=100, completion=10, cost=0.02, model="large"),
        cost.usage(tenant, prompt=50, completion=5, cost=0.01, model="small", provider="local"),
        cost.usage(tenant, prompt=7, completion=3, cost=0.001, model="large", at=at(earlier)),
        cost.usage(tenant, prompt=1, completion=1, cost=0.5, model="large", at=at(long_ago)),
    )
    governance = await cost.governance(tenant)
    assert [(row["day"], row["model"], row["provider"]) for row in governance["usage"]] == [
        (today.isoformat(), "large", "openai"),
        (today.isoformat(), "small", "local"),
        (earlier.isoformat(), "large", "openai"),
    ]
    assert governance["usage"][0] == {
        "day": today.isoformat(),
        "model": "large",
        "provider": "openai",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": 0.02,
        "calls": 1,
    }
    assert governance["current"]["day"]["tokens"] == 165
    assert governance["current"]["day"]["usd"] == pytest.approx(0.03)
    this_month = today.replace(day=1)
    month_tokens = 165 + sum(n for d, n in ((earlier, 10), (long_ago, 2)) if d.replace(day=1) == this_month)
    assert governance["current"]["month"]["tokens"] == month_tokens

    only_earlier = await cost.governance(tenant, since=earlier.isoformat(), until=earlier.isoformat())
    assert [row["day"] for row in only_earlier["usage"]] == [earlier.isoformat()]
    assert only_earlier["current"] == governance["current"]  # the window does not move "current"
    old = await cost.governance(tenant, until=long_ago.isoformat())
    assert [row["cost_usd"] for row in old["usage"]] == [0.5]


async def test_the_overview_lists_every_tenant_with_a_budget_or_usage(cost, tenant: str) -> None:
    spender = f"t-{uuid.uuid4().hex[:8]}"
    await cost.put_budget(tenant, monthly_usd=1)
    await cost.consume(cost.usage(spender, prompt=40, completion=2, cost=0.75))
    await cost.put_budget(spender, daily_tokens=40)

    found: dict[str, dict] = {}
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        response = await cost.client.get("/v1/governance/overview", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found.update({item["tenant_id"]: item for item in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert found[tenant]["exceeded"] is False
    assert found[tenant]["current"]["month"]["limit_usd"] == 1.0
    assert found[tenant]["current"]["month"]["remaining_usd"] == 1.0
    assert found[spender]["current"]["day"]["tokens"] == 42
    assert found[spender]["current"]["month"]["usd"] == 0.75
    assert found[spender]["exceeded"] is True
    assert found[spender]["exceeded_limits"] == ["daily_tokens"]
    assert found[spender]["utilization"] == 1.05

    first = (await cost.client.get("/v1/governance/overview", params={"limit": 1})).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = (
        await cost.client.get("/v1/governance/overview", params={"limit": 1, "cursor": first["next_cursor"]})
    ).json()
    assert second["items"][0]["tenant_id"] > first["items"][0]["tenant_id"]
