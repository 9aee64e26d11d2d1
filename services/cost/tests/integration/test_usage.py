"""Usage accounting: llm.usage events from the real broker into cost_logs, once each, per tenant."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rae_common.events import MemoryCreated, new_envelope
from rae_cost.main import CostSettings


async def test_a_redelivered_or_resent_call_counts_once(cost, tenant: str) -> None:
    first = cost.usage(tenant, request_id="req-1", prompt=100, completion=20, cost=0.25)
    resent = cost.usage(tenant, request_id="req-1", prompt=100, completion=20, cost=0.25)
    assert resent.id != first.id
    not_usage = new_envelope(
        "memory.created",
        MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash="h"),
        tenant_id=tenant,
        producer="test",
    )
    await cost.publish(first, first, not_usage, resent)
    await cost.consume(cost.usage(tenant, request_id="req-2", prompt=1, completion=2, cost=0.5))

    items = (await cost.logs(tenant))["items"]
    assert sorted(i["request_id"] for i in items) == ["req-1", "req-2"]
    [call] = [i for i in items if i["request_id"] == "req-1"]
    assert call["id"] == str(first.id)
    assert (call["input_tokens"], call["output_tokens"], call["cost_usd"]) == (100, 20, 0.25)
    assert (call["model"], call["provider"], call["operation"]) == ("gpt-test", "openai", "generate")
    assert call["trace_id"] == "ab" * 16
    governance = await cost.governance(tenant)
    assert governance["usage"] == [
        {
            "day": cost.now.date().isoformat(),
            "model": "gpt-test",
            "provider": "openai",
            "input_tokens": 101,
            "output_tokens": 22,
            "cost_usd": 0.75,
            "calls": 2,
        }
    ]
    assert governance["current"]["day"]["tokens"] == 123
    assert governance["current"]["day"]["usd"] == 0.75


async def test_a_rolled_up_event_counts_all_its_calls(cost, tenant: str) -> None:
    single = cost.usage(tenant, prompt=7, completion=0, cost=0.0, model="mini", operation="embed")
    rolled = cost.usage(
        tenant,
        request_id="rollup.1",
        prompt=300,
        completion=0,
        cost=0.0,
        model="mini",
        operation="embed",
        calls=41,
    )
    await cost.consume(single, rolled)

    items = {i["request_id"]: i for i in (await cost.logs(tenant))["items"]}
    assert items["rollup.1"]["calls"] == 41 and items["rollup.1"]["input_tokens"] == 300
    assert items["rollup.1"]["trace_id"] is None
    assert items[single.data.request_id]["calls"] == 1
    [day] = (await cost.governance(tenant))["usage"]
    assert (day["calls"], day["input_tokens"]) == (42, 307)


async def test_logs_are_paged_newest_first_and_filtered(cost, tenant: str) -> None:
    calls = [
        cost.usage(
            tenant,
            request_id=f"r{i}",
            model="small" if i % 2 else "large",
            provider="openai" if i < 3 else "local",
            at=cost.now - timedelta(minutes=i),
        )
        for i in range(5)
    ]
    # The same time twice: the id breaks the tie, so paging neither skips nor repeats.
    calls.append(
        cost.usage(tenant, request_id="r5", model="large", provider="local", at=calls[4].occurred_at)
    )
    await cost.consume(*calls)

    seen: list[str] = []
    page = await cost.logs(tenant, limit=2)
    while True:
        assert len(page["items"]) <= 2
        seen += [item["request_id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        page = await cost.logs(tenant, limit=2, cursor=page["next_cursor"])
    assert sorted(seen) == [f"r{i}" for i in range(6)]
    assert seen[:4] == ["r0", "r1", "r2", "r3"]

    async def requests(**params: object) -> list[str]:
        return [item["request_id"] for item in (await cost.logs(tenant, **params))["items"]]

    assert await requests(model="small") == ["r1", "r3"]
    assert sorted(await requests(provider="local")) == ["r3", "r4", "r5"]
    assert await requests(request_id="r2") == ["r2"]
    assert await requests(model="large", provider="openai", limit=500) == ["r0", "r2"]
    window = await cost.logs(
        tenant,
        since=(cost.now - timedelta(minutes=2)).isoformat(),
        until=(cost.now - timedelta(minutes=1)).isoformat(),
    )
    assert [i["request_id"] for i in window["items"]] == ["r2"]  # since inclusive, until exclusive


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "many"},
        {"cursor": "garbage"},
        {"cursor": "WyJub3QgYSB0aW1lIiwgIm5vdCBhIHV1aWQiXQ"},  # ["not a time", "not a uuid"]
        {"since": "yesterday"},
        {"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"},
        {"model": ""},
    ],
)
async def test_bad_log_queries_are_422_problems(cost, tenant: str, params: dict) -> None:
    response = await cost.client.get("/v1/cost/logs", params=params, headers={"X-Tenant-ID": tenant})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_logs_need_a_valid_tenant_header(cost) -> None:
    assert (await cost.client.get("/v1/cost/logs")).status_code == 400
    bad = await cost.client.get("/v1/cost/logs", headers={"X-Tenant-ID": "no spaces"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"


async def test_a_tenant_never_sees_another_tenants_logs_or_usage(
    cost, tenant: str, cost_settings: CostSettings
) -> None:
    other = f"t-{uuid.uuid4().hex[:8]}"
    await cost.consume(
        cost.usage(other, request_id="shared-id", prompt=1000, model="theirs"),
        cost.usage(tenant, request_id="shared-id", prompt=7, model="mine"),
    )
    await cost.recorded(other, "shared-id")
    await cost.put_budget(other, daily_tokens=10)

    assert [i["model"] for i in (await cost.logs(tenant))["items"]] == ["mine"]
    mine = await cost.governance(tenant)
    assert [row["model"] for row in mine["usage"]] == ["mine"]
    assert mine["current"]["day"]["tokens"] == 12
    assert mine["budget"] is None

    # Row-level security holds even for a query that forgets the tenant.
    conn = await asyncpg.connect(cost_settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant)
            for table in ("cost_logs", "usage_daily", "budgets", "budget_alerts"):
                rows = await conn.fetch(f"SELECT DISTINCT tenant_id FROM cost.{table}")
                assert {row["tenant_id"] for row in rows} <= {tenant}, table
        # The overview's policy reads rollups and budgets of every tenant, never a call.
        async with conn.transaction():
            await conn.execute("SELECT set_config('rae.overview', 'all-tenants', true)")
            assert await conn.fetchval("SELECT count(*) FROM cost.cost_logs") == 0
            assert await conn.fetchval("SELECT count(*) FROM cost.budgets WHERE tenant_id = $1", other) == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("SELECT set_config('rae.overview', 'all-tenants', true)")
                await conn.execute(
                    "INSERT INTO cost.usage_daily (tenant_id, day, model, provider) "
                    "VALUES ($1, current_date, 'm', 'p')",
                    other,
                )
    finally:
        await conn.close()


async def test_recorded_usage_and_utilization_are_on_metrics(cost, tenant: str) -> None:
    await cost.put_budget(tenant, daily_tokens=1000)
    await cost.consume(cost.usage(tenant, prompt=300, completion=100, cost=0.125, model="metered"))

    text = (await cost.client.get("/metrics")).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    labels = {"tenant": tenant, "model": "metered"}
    assert samples["rae_llm_tokens_total", tuple(sorted({**labels, "direction": "input"}.items()))] == 300
    assert samples["rae_llm_tokens_total", tuple(sorted({**labels, "direction": "output"}.items()))] == 100
    assert samples["rae_llm_cost_usd_total", tuple(sorted(labels.items()))] == 0.125
    assert samples["rae_budget_utilization", (("tenant", tenant),)] == pytest.approx(0.4)


async def test_ready_once_the_consumer_has_its_partitions(cost) -> None:
    async def ready() -> dict | None:
        response = await cost.client.get("/readyz")
        return response.json() if response.status_code == 200 else None

    assert (await cost.eventually(ready))["checks"] == {
        "kafka-topics": "ok",
        "postgres": "ok",
        "kafka": "ok",
        "kafka-consumer": "ok",
    }
