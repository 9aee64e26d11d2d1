"""The admin API: who may call it, tenants, API keys (shown once, revoked at once), limits."""

from __future__ import annotations

import uuid

import httpx

from rae_common.testing import serve_app
from rae_gateway.main import create_app

ADMIN_TOKEN_HEADER = {"Authorization": "Bearer " + "gateway-test-admin-" + "a" * 40}


async def test_platform_routes_need_the_platform_admin_token(gateway: httpx.AsyncClient, bearer) -> None:
    anonymous = await gateway.get("/v1/admin/tenants")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    wrong_token = await gateway.get("/v1/admin/tenants", headers={"Authorization": "Bearer not-the-token"})
    assert wrong_token.status_code == 401

    # A tenant's credential, even with `admin`, administers that tenant only: listing or creating
    # tenants spans them all.
    for headers in (bearer("memories:read", "memories:write"), bearer("admin")):
        refused = await gateway.get("/v1/admin/tenants", headers=headers)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/platform-admin-required")
    assert (await gateway.get("/v1/admin/tenants", headers=ADMIN_TOKEN_HEADER)).status_code == 200


async def test_an_empty_admin_token_disables_it(make_settings) -> None:
    async with serve_app(create_app(make_settings(rae_admin_token=""))) as client:
        response = await client.get("/v1/admin/tenants", headers={"Authorization": "Bearer "})
        assert response.status_code == 401
        response = await client.get("/v1/admin/tenants", headers=ADMIN_TOKEN_HEADER)
        assert response.status_code == 401


async def test_a_tenant_admin_cannot_reach_another_tenant(
    gateway: httpx.AsyncClient, admin, upstream, bearer
) -> None:
    home, other = await admin.tenant(), await admin.tenant()
    other_key = await admin.key(other, "memories:read")
    tenant_admins = {
        "api key": {"X-API-Key": (await admin.key(home, "admin"))["key"]},
        "jwt": bearer("admin", tenant=home),
    }
    attempts: list[tuple[str, str, object]] = [
        ("POST", "/v1/admin/tenants", {"id": f"t-{uuid.uuid4().hex[:8]}"}),
        ("GET", "/v1/admin/tenants", None),
        ("GET", f"/v1/admin/tenants/{other}", None),
        ("GET", f"/v1/admin/tenants/{other}/limits", None),
        ("PUT", f"/v1/admin/tenants/{other}/limits", {"search": 100_000}),
        ("POST", f"/v1/admin/tenants/{other}/api-keys", {"name": "mine now", "scopes": ["memories:read"]}),
        ("GET", f"/v1/admin/tenants/{other}/api-keys", None),
        ("DELETE", f"/v1/admin/tenants/{other}/api-keys/{other_key['id']}", None),
        ("PUT", f"/v1/governance/tenant/{other}/budget", {"daily_tokens": 1}),
        ("GET", f"/v1/governance/tenant/{other}/budget", None),
        ("GET", f"/v1/governance/tenant/{other}", None),
        ("GET", "/v1/governance/overview", None),
    ]
    reached = len(upstream.requests)
    for kind, headers in tenant_admins.items():
        for method, path, body in attempts:
            response = await gateway.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (kind, method, path, response.status_code, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert other_key["prefix"] not in response.text
        # Its memories are its own tenant's, whatever tenant header it adds.
        await gateway.get("/v1/memories", headers={**headers, "X-Tenant-ID": other})
        assert upstream.last().headers["x-tenant-id"] == home
    assert len(upstream.requests) == reached + len(tenant_admins)

    untouched = await gateway.get(f"/v1/admin/tenants/{other}/api-keys", headers=ADMIN_TOKEN_HEADER)
    assert [(k["id"], k["revoked_at"]) for k in untouched.json()["items"]] == [(other_key["id"], None)]
    limits = await gateway.get(f"/v1/admin/tenants/{other}/limits", headers=ADMIN_TOKEN_HEADER)
    assert limits.json()["overrides"] == {}


async def test_a_tenant_admin_administers_its_own_tenant(gateway: httpx.AsyncClient, admin, bearer) -> None:
    home = await admin.tenant(search=7)
    for headers in ({"X-API-Key": (await admin.key(home, "admin"))["key"]}, bearer("admin", tenant=home)):
        assert (await gateway.get(f"/v1/admin/tenants/{home}", headers=headers)).json()["id"] == home
        created = await gateway.post(
            f"/v1/admin/tenants/{home}/api-keys",
            json={"name": "ingest-bot", "scopes": ["memories:write"]},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        assert created.json()["tenant_id"] == home
        listed = await gateway.get(f"/v1/admin/tenants/{home}/api-keys", headers=headers)
        assert created.json()["id"] in {k["id"] for k in listed.json()["items"]}
        revoked = await gateway.delete(
            f"/v1/admin/tenants/{home}/api-keys/{created.json()['id']}", headers=headers
        )
        assert revoked.status_code == 204
        limits = await gateway.get(f"/v1/admin/tenants/{home}/limits", headers=headers)
        assert limits.json()["effective"]["search"] == 7
        # Rate limits are the platform's allowance to the tenant: it reads them, it does not raise them.
        raised = await gateway.put(f"/v1/admin/tenants/{home}/limits", json={"search": 1000}, headers=headers)
        assert raised.status_code == 403
        assert raised.json()["type"].endswith("/platform-admin-required")
    no_admin = await gateway.get(
        f"/v1/admin/tenants/{home}/api-keys", headers=bearer("memories:read", tenant=home)
    )
    assert no_admin.status_code == 403
    assert no_admin.json()["required_scope"] == "admin"


async def test_tenants_are_created_once_with_valid_ids(gateway: httpx.AsyncClient) -> None:
    tenant_id = f"acme-{uuid.uuid4().hex[:8]}"
    created = await gateway.post(
        "/v1/admin/tenants", json={"id": tenant_id, "name": "Acme Corp"}, headers=ADMIN_TOKEN_HEADER
    )
    assert created.status_code == 201
    assert created.json()["id"] == tenant_id
    assert created.json()["name"] == "Acme Corp"
    assert created.json()["limits"] == {}

    again = await gateway.post("/v1/admin/tenants", json={"id": tenant_id}, headers=ADMIN_TOKEN_HEADER)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"

    for bad in ("has space", "", "-starts-with-dash", "x" * 65, "semi;colon"):
        invalid = await gateway.post("/v1/admin/tenants", json={"id": bad}, headers=ADMIN_TOKEN_HEADER)
        assert invalid.status_code == 422, bad

    fetched = await gateway.get(f"/v1/admin/tenants/{tenant_id}", headers=ADMIN_TOKEN_HEADER)
    assert fetched.json()["name"] == "Acme Corp"
    missing = await gateway.get("/v1/admin/tenants/no-such-tenant-here", headers=ADMIN_TOKEN_HEADER)
    assert missing.status_code == 404


async def test_tenant_list_pages_by_id(gateway: httpx.AsyncClient, admin) -> None:
    mine = sorted([await admin.tenant() for _ in range(3)])
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await gateway.get("/v1/admin/tenants", params=params, headers=ADMIN_TOKEN_HEADER)).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(mine) <= set(seen)
    assert seen == sorted(seen)


async def test_api_key_is_shown_once_then_only_its_prefix(gateway: httpx.AsyncClient, admin) -> None:
    tenant_id = await admin.tenant()
    created = await gateway.post(
        f"/v1/admin/tenants/{tenant_id}/api-keys",
        json={"name": "ci", "scopes": ["memories:write", "memories:read", "memories:read"]},
        headers=ADMIN_TOKEN_HEADER,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith(f"rae_{body['prefix']}_")
    assert len(body["key"]) == 4 + 8 + 1 + 43
    assert body["scopes"] == ["memories:read", "memories:write"]
    assert body["tenant_id"] == tenant_id

    listed = await gateway.get(f"/v1/admin/tenants/{tenant_id}/api-keys", headers=ADMIN_TOKEN_HEADER)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["id"] == body["id"]
    assert item["prefix"] == body["prefix"]
    assert "key" not in item
    assert "secret_hash" not in item
    secret = body["key"].removeprefix(f"rae_{body['prefix']}_")  # the secret itself may hold "_"
    assert secret not in listed.text


async def test_api_key_requests_are_checked(gateway: httpx.AsyncClient, admin) -> None:
    unknown = await gateway.post(
        "/v1/admin/tenants/no-such-tenant-here/api-keys",
        json={"name": "x", "scopes": ["memories:read"]},
        headers=ADMIN_TOKEN_HEADER,
    )
    assert unknown.status_code == 404
    tenant_id = await admin.tenant()
    for scopes in (["memories:read", "root"], [], ["MEMORIES:READ"]):
        bad = await gateway.post(
            f"/v1/admin/tenants/{tenant_id}/api-keys",
            json={"name": "x", "scopes": scopes},
            headers=ADMIN_TOKEN_HEADER,
        )
        assert bad.status_code == 422, scopes
    named = await gateway.post(
        f"/v1/admin/tenants/{tenant_id}/api-keys",
        json={"name": "x", "scopes": ["root"]},
        headers=ADMIN_TOKEN_HEADER,
    )
    assert "root" in named.json()["errors"][0]["msg"]
    listing = await gateway.get("/v1/admin/tenants/no-such-tenant-here/api-keys", headers=ADMIN_TOKEN_HEADER)
    assert listing.status_code == 404


async def test_revoked_key_is_refused_on_the_next_request(
    gateway: httpx.AsyncClient, admin, upstream
) -> None:
    tenant_id = await admin.tenant()
    key = await admin.key(tenant_id, "memories:read")
    memory = f"/v1/memories/{uuid.uuid4()}"
    assert (await gateway.get(memory, headers={"X-API-Key": key["key"]})).status_code == 200

    revoked = await gateway.delete(
        f"/v1/admin/tenants/{tenant_id}/api-keys/{key['id']}", headers=ADMIN_TOKEN_HEADER
    )
    assert revoked.status_code == 204
    reached = len(upstream.requests)
    refused = await gateway.get(memory, headers={"X-API-Key": key["key"]})
    assert refused.status_code == 401
    assert refused.json()["type"].endswith("/invalid-api-key")
    assert len(upstream.requests) == reached

    listed = await gateway.get(f"/v1/admin/tenants/{tenant_id}/api-keys", headers=ADMIN_TOKEN_HEADER)
    assert listed.json()["items"][0]["revoked_at"] is not None
    twice = await gateway.delete(
        f"/v1/admin/tenants/{tenant_id}/api-keys/{key['id']}", headers=ADMIN_TOKEN_HEADER
    )
    assert twice.status_code == 204
    other = await gateway.delete(
        f"/v1/admin/tenants/{tenant_id}/api-keys/{uuid.uuid4()}", headers=ADMIN_TOKEN_HEADER
    )
    assert other.status_code == 404
    foreign = await gateway.delete(
        f"/v1/admin/tenants/{await admin.tenant()}/api-keys/{key['id']}", headers=ADMIN_TOKEN_HEADER
    )
    assert foreign.status_code == 404


async def test_last_use_is_recorded_without_a_write_per_request(gateway: httpx.AsyncClient, admin) -> None:
    tenant_id = await admin.tenant()
    key = await admin.key(tenant_id, "memories:read")
    listing = f"/v1/admin/tenants/{tenant_id}/api-keys"
    assert (await gateway.get(listing, headers=ADMIN_TOKEN_HEADER)).json()["items"][0]["last_used_at"] is None

    await gateway.get(f"/v1/memories/{uuid.uuid4()}", headers={"X-API-Key": key["key"]})
    first = (await gateway.get(listing, headers=ADMIN_TOKEN_HEADER)).json()["items"][0]["last_used_at"]
    assert first is not None
    for _ in range(3):
        await gateway.get(f"/v1/memories/{uuid.uuid4()}", headers={"X-API-Key": key["key"]})
    # Within the touch interval (60 s) the row is not written again.
    assert (await gateway.get(listing, headers=ADMIN_TOKEN_HEADER)).json()["items"][0][
        "last_used_at"
    ] == first


async def test_limits_are_read_and_replaced(gateway: httpx.AsyncClient, admin) -> None:
    tenant_id = await admin.tenant(search=7)
    limits = await gateway.get(f"/v1/admin/tenants/{tenant_id}/limits", headers=ADMIN_TOKEN_HEADER)
    assert limits.json() == {
        "tenant_id": tenant_id,
        "overrides": {"search": 7},
        "effective": {"memories_create": 30, "search": 7, "ml_generate": 20},
    }
    replaced = await admin.set_limits(tenant_id, memories_create=0, ml_generate=None)
    assert replaced["overrides"] == {"memories_create": 0}
    assert replaced["effective"] == {"memories_create": 0, "search": 60, "ml_generate": 20}

    for bad in ({"search": -1}, {"uploads": 3}, {"search": "many"}):
        response = await gateway.put(
            f"/v1/admin/tenants/{tenant_id}/limits", json=bad, headers=ADMIN_TOKEN_HEADER
        )
        assert response.status_code == 422, bad
    missing = await gateway.put(
        "/v1/admin/tenants/no-such-tenant-here/limits", json={"search": 1}, headers=ADMIN_TOKEN_HEADER
    )
    assert missing.status_code == 404
    assert (
        await gateway.get("/v1/admin/tenants/no-such-tenant-here/limits", headers=ADMIN_TOKEN_HEADER)
    ).status_code == 404


async def test_governance_root_lists_the_callers_governance_routes(
    gateway: httpx.AsyncClient, bearer
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    own = await gateway.get("/v1/governance", headers=bearer("governance:read", tenant=tenant))
    assert own.status_code == 200, own.text
    assert own.json() == {
        "tenant_id": tenant,
        "links": {
            "usage": f"/v1/governance/tenant/{tenant}",
            "budget": f"/v1/governance/tenant/{tenant}/budget",
            "cost_logs": "/v1/cost/logs",
        },
    }
    platform = await gateway.get("/v1/governance", headers=ADMIN_TOKEN_HEADER)
    assert platform.json() == {
        "tenant_id": None,
        "links": {
            "usage": "/v1/governance/tenant/{tenant_id}",
            "budget": "/v1/governance/tenant/{tenant_id}/budget",
            "overview": "/v1/governance/overview",
        },
    }
    assert (await gateway.get("/v1/governance")).status_code == 401
    no_scope = await gateway.get("/v1/governance", headers=bearer("memories:read", tenant=tenant))
    assert no_scope.status_code == 403
    assert no_scope.json()["required_scope"] == "governance:read"
