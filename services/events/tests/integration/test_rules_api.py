"""Rules through /v1/events/rules: CRUD, validation, the default rule, tenant isolation."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from rae_events.main import EventsSettings

WEBHOOK = {"kind": "webhook", "url": "https://hooks.example.com/rae", "secret": "a-secret-of-some-length"}


async def test_a_rule_is_created_read_replaced_listed_and_deleted(engine, tenant: str) -> None:
    created = await engine.create_rule(
        tenant, name="reflect often", type="memory_count", params={"every": 5}, action=WEBHOOK, cooldown_s=30
    )
    assert created["tenant_id"] == tenant
    assert created["params"] == {"every": 5, "layers": None}
    assert created["action"] == {
        "kind": "webhook",
        "url": "https://hooks.example.com/rae",
        "event_type": "reflection.requested",
    }
    assert "secret" not in str(created)  # write-only
    assert (created["cooldown_s"], created["max_attempts"], created["enabled"]) == (30, 5, True)
    path = f"/v1/events/rules/{created['id']}"
    assert await engine.call("GET", path, tenant) == created

    replaced = await engine.call(
        "PUT",
        path,
        tenant,
        json={
            "name": "alert on budget",
            "type": "budget",
            "params": {"levels": ["exceeded"]},
            "enabled": False,
        },
    )
    assert replaced["id"] == created["id"]
    assert (replaced["type"], replaced["params"], replaced["enabled"]) == (
        "budget",
        {"levels": ["exceeded"]},
        False,
    )
    assert replaced["action"] == {"kind": "event", "event_type": "alert.raised"}
    assert replaced["updated_at"] > created["updated_at"]

    second = await engine.create_rule(tenant, type="eval_quality", params={"metric": "mrr", "below": 0.3})
    listed = await engine.call("GET", "/v1/events/rules", tenant)
    assert [r["id"] for r in listed["items"]] == [created["id"], second["id"]]  # oldest first
    assert [
        r["id"] for r in (await engine.call("GET", "/v1/events/rules?type=eval_quality", tenant))["items"]
    ] == [second["id"]]
    assert [
        r["id"] for r in (await engine.call("GET", "/v1/events/rules?enabled=false", tenant))["items"]
    ] == [created["id"]]
    first_page = await engine.call("GET", "/v1/events/rules?limit=1", tenant)
    assert [r["id"] for r in first_page["items"]] == [created["id"]]
    rest = await engine.call("GET", f"/v1/events/rules?limit=1&cursor={first_page['next_cursor']}", tenant)
    assert ([r["id"] for r in rest["items"]], rest["next_cursor"]) == ([second["id"]], None)

    await engine.call("DELETE", path, tenant, 204)
    missing = await engine.client.get(path, headers={"X-Tenant-ID": tenant})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    await engine.call("DELETE", path, tenant, 404)


async def test_rule_names_are_unique_per_tenant(engine, tenant: str) -> None:
    await engine.create_rule(tenant, name="same", type="budget")
    taken = await engine.call(
        "POST", "/v1/events/rules", tenant, 409, json={"name": "same", "type": "budget"}
    )
    assert taken["type"].endswith("/rule-name-taken")
    other = await engine.create_rule(tenant, name="other", type="budget")
    await engine.call(
        "PUT", f"/v1/events/rules/{other['id']}", tenant, 409, json={"name": "same", "type": "budget"}
    )
    await engine.create_rule(f"t-{uuid.uuid4().hex[:8]}", name="same", type="budget")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "type": "nope"},
        {"name": "x", "type": "memory_count", "params": {"every": 0}},
        {"name": "x", "type": "eval_quality", "params": {"metric": "recall_at_k", "below": 2}},
        {"name": "x", "type": "budget", "action": {"kind": "event", "event_type": "reflection.requested"}},
        {"name": "x", "type": "budget", "action": {**WEBHOOK, "url": "file:///etc/passwd"}},
        {"name": "x", "type": "budget", "action": {**WEBHOOK, "secret": "short"}},
        {"name": "x", "type": "budget", "surprise": True},
        {"type": "budget"},
    ],
)
async def test_invalid_rules_are_422_problems(engine, tenant: str, body: dict) -> None:
    problem = await engine.call("POST", "/v1/events/rules", tenant, 422, json=body)
    assert problem["status"] == 422
    assert "a-secret-of-some-length" not in str(problem)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/events/rules/not-a-uuid"),
        ("GET", "/v1/events/rules?limit=0"),
        ("GET", "/v1/events/rules?cursor=garbage"),
        ("GET", "/v1/events/triggers?status=exploded"),
        ("GET", "/v1/events/triggers?since=2026-05-02T00:00:00Z&until=2026-05-01T00:00:00Z"),
        ("GET", "/v1/events/triggers?cursor=WyJub3QgYSB0aW1lIiwgIm5vdCBhIHV1aWQiXQ"),
        ("GET", "/v1/events/dlq?kind=other"),
        ("POST", "/v1/events/dlq/not-a-uuid/replay"),
    ],
)
async def test_bad_paths_and_queries_are_422_problems(engine, tenant: str, method: str, path: str) -> None:
    response = await engine.client.request(method, path, headers={"X-Tenant-ID": tenant})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_routes_need_a_valid_tenant_header(engine) -> None:
    assert (await engine.client.get("/v1/events/rules")).status_code == 400
    bad = await engine.client.get("/v1/events/triggers", headers={"X-Tenant-ID": "no spaces"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"


async def test_a_tenant_without_rules_gets_the_default_once(engine, tenant: str) -> None:
    [default] = (await engine.call("GET", "/v1/events/rules", tenant))["items"]
    assert (default["type"], default["params"], default["action"], default["cooldown_s"]) == (
        "memory_count",
        {"every": 20, "layers": None},
        {"kind": "event", "event_type": "reflection.requested"},
        0,
    )
    assert [r["id"] for r in (await engine.call("GET", "/v1/events/rules", tenant))["items"]] == [
        default["id"]
    ]
    # Deleting it is a choice the engine keeps.
    await engine.call("DELETE", f"/v1/events/rules/{default['id']}", tenant, 204)
    assert (await engine.call("GET", "/v1/events/rules", tenant))["items"] == []


async def test_a_tenant_that_starts_by_creating_a_rule_has_only_its_own(engine, tenant: str) -> None:
    mine = await engine.create_rule(tenant, type="budget")
    assert [r["id"] for r in (await engine.call("GET", "/v1/events/rules", tenant))["items"]] == [mine["id"]]


async def test_a_tenant_never_reaches_another_tenants_rules(
    engine, tenant: str, events_settings: EventsSettings
) -> None:
    other = f"t-{uuid.uuid4().hex[:8]}"
    theirs = await engine.create_rule(other, type="budget", action=WEBHOOK)
    path = f"/v1/events/rules/{theirs['id']}"
    await engine.call("GET", path, tenant, 404)
    await engine.call("PUT", path, tenant, 404, json={"name": "x", "type": "budget"})
    await engine.call("DELETE", path, tenant, 404)
    assert theirs["id"] not in str(await engine.call("GET", "/v1/events/rules", tenant))
    assert (await engine.call("GET", path, other))["id"] == theirs["id"]

    # Row-level security holds even for a query that forgets the tenant.
    conn = await asyncpg.connect(events_settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant)
            for table in ("rules", "rule_state", "firings", "dead_letters", "tenants", "event_log"):
                rows = await conn.fetch(f"SELECT DISTINCT tenant_id FROM events.{table}")
                assert {row["tenant_id"] for row in rows} <= {tenant}, table
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO events.rules (id, tenant_id, name, type, params, action, cooldown_s, "
                    "max_attempts, enabled) VALUES ($1, $2, 'x', 'budget', '{}', '{}', 0, 1, true)",
                    uuid.uuid4(),
                    other,
                )
    finally:
        await conn.close()
