"""What reaches the services: the tenant of the credential, the caller's bytes, nothing else."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from rae_common.testing import serve_app
from rae_gateway.main import create_app

WRITE = ("memories:write",)
READ = ("memories:read",)


async def test_create_forwards_the_bytes_and_the_tenant_of_the_credential(
    gateway: httpx.AsyncClient, upstream, bearer
) -> None:
    body = '{"content":   "caf\\u00e9 \u2615 tea",\n "tags": ["pref"]}'.encode()
    response = await gateway.post(
        "/v1/memories",
        content=body,
        headers={
            **bearer(*WRITE, tenant="acme"),
            "content-type": "application/json",
            "X-Tenant-ID": "intruder",
            "Idempotency-Key": "order-42",
            "X-Request-ID": "req-123",
            "Cookie": "session=secret",
        },
    )
    assert response.status_code == 201
    assert response.json() == {"upstream": "ok", "path": "/v1/memories"}
    arrived = upstream.last()
    assert (arrived.method, arrived.target) == ("POST", "/v1/memories")
    assert arrived.body == body
    assert arrived.headers["x-tenant-id"] == "acme"
    assert arrived.headers["idempotency-key"] == "order-42"
    assert arrived.headers["x-request-id"] == "req-123"
    assert arrived.headers["content-type"] == "application/json"
    for private in ("authorization", "cookie", "x-api-key"):
        assert private not in arrived.headers
    assert response.headers["x-request-id"] == "req-123"


async def test_an_erasure_names_its_actor_from_the_credential_only(
    gateway: httpx.AsyncClient, upstream, bearer
) -> None:
    response = await gateway.delete(
        "/v1/memories",
        params={"subject": "lena"},
        headers={**bearer(*WRITE, tenant="acme"), "X-RAE-Actor": "someone-else"},
    )
    assert response.status_code == 200
    arrived = upstream.last()
    assert (arrived.method, arrived.target) == ("DELETE", "/v1/memories?subject=lena")
    assert arrived.headers["x-rae-actor"] == "agent"
    # Only the erase route names the actor.
    await gateway.get("/v1/memories", headers={**bearer(*READ), "X-RAE-Actor": "someone-else"})
    assert "x-rae-actor" not in upstream.last().headers


async def test_an_api_key_works_with_its_scopes_only(gateway: httpx.AsyncClient, upstream, admin) -> None:
    tenant_id = await admin.tenant()
    key = await admin.key(tenant_id, *READ)
    memory_id = uuid.uuid4()
    read = await gateway.get(
        f"/v1/memories/{memory_id}", headers={"X-API-Key": key["key"], "X-Tenant-ID": "x"}
    )
    assert read.status_code == 200
    assert upstream.last().target == f"/v1/memories/{memory_id}"
    assert upstream.last().headers["x-tenant-id"] == tenant_id
    assert "x-api-key" not in upstream.last().headers

    as_bearer = await gateway.get(
        f"/v1/memories/{memory_id}", headers={"Authorization": f"Bearer {key['key']}"}
    )
    assert as_bearer.status_code == 200

    reached = len(upstream.requests)
    write = await gateway.post("/v1/memories", json={"content": "x"}, headers={"X-API-Key": key["key"]})
    assert write.status_code == 403
    assert write.json()["required_scope"] == "memories:write"
    assert len(upstream.requests) == reached


@pytest.mark.parametrize(
    "value",
    [
        "rae_nope",
        "rae_abcdefgh_" + "x" * 43,  # well formed, unknown
        "sk-something-else",
    ],
)
async def test_wrong_api_keys_are_401(gateway: httpx.AsyncClient, value: str) -> None:
    response = await gateway.get(f"/v1/memories/{uuid.uuid4()}", headers={"X-API-Key": value})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "error=" in response.headers["www-authenticate"]


async def test_a_key_with_the_wrong_secret_is_401(gateway: httpx.AsyncClient, admin) -> None:
    key = (await admin.key(await admin.tenant(), *READ))["key"]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    response = await gateway.get(f"/v1/memories/{uuid.uuid4()}", headers={"X-API-Key": forged})
    assert response.status_code == 401


async def test_two_credentials_at_once_are_refused(gateway: httpx.AsyncClient, admin, bearer) -> None:
    key = (await admin.key(await admin.tenant(), *READ))["key"]
    response = await gateway.get(f"/v1/memories/{uuid.uuid4()}", headers={**bearer(*READ), "X-API-Key": key})
    assert response.status_code == 401


async def test_multipart_ingestion_arrives_intact(gateway: httpx.AsyncClient, upstream, bearer) -> None:
    document = b"# Notes\n\nAlice prefers green tea.\n\x00\xff binary tail"
    response = await gateway.post(
        "/v1/memories/ingest",
        files={"file": ("notes.md", document, "text/markdown")},
        data={
            "layer": "semantic",
            "tags": "notes, tea",
            "subject": "alice",
            "metadata": '{"source": "wiki"}',
        },
        headers=bearer(*WRITE, tenant="acme"),
    )
    assert response.status_code == 201
    arrived = upstream.last()
    assert arrived.target == "/v1/memories/ingest"
    assert arrived.headers["content-type"].startswith("multipart/form-data; boundary=")
    boundary = arrived.headers["content-type"].split("boundary=")[1]
    assert boundary.encode() in arrived.body
    assert document in arrived.body
    assert arrived.headers["x-tenant-id"] == "acme"


async def test_json_ingestion_is_forwarded(gateway: httpx.AsyncClient, upstream, bearer) -> None:
    body = {"text": "Alice prefers green tea.", "filename": "notes.txt", "tags": ["tea"]}
    response = await gateway.post("/v1/memories/ingest", json=body, headers=bearer(*WRITE))
    assert response.status_code == 201
    assert json.loads(upstream.last().body) == body


async def test_query_strings_go_on_as_sent(gateway: httpx.AsyncClient, upstream, bearer) -> None:
    query = (
        "layer=semantic&layer=episodic&tags=a&tags=b%20c&metadata=source%3Dslack"
        "&since=2026-01-01T00:00:00Z&limit=5"
    )
    response = await gateway.get(f"/v1/memories?{query}", headers=bearer(*READ))
    assert response.status_code == 200
    assert upstream.last().target == f"/v1/memories?{query}"


async def test_every_route_reaches_its_service_path(gateway: httpx.AsyncClient, upstream, bearer) -> None:
    headers = bearer("memories:read", "memories:write", "ml:use", "events:read")
    memory_id = uuid.uuid4()
    item = {"content": "one"}
    calls = [
        ("POST", "/v1/memories/batch", {"items": [item, item]}, 201),
        ("PATCH", f"/v1/memories/{memory_id}", {"tags": ["x"]}, 200),
        ("DELETE", f"/v1/memories/{memory_id}", None, 204),
        ("DELETE", "/v1/memories?subject=alice", None, 200),
        ("POST", "/v1/search/hybrid", {"query": "tea", "k": 3}, 201),
        ("POST", "/v1/ml/embed", {"texts": ["a", "b"], "model": None}, 201),
        ("GET", "/v1/events/log?type=memory.created&limit=2", None, 200),
    ]
    for method, target, body, status in calls:
        response = await gateway.request(method, target, json=body, headers=headers)
        assert response.status_code == status, (target, response.text)
        arrived = upstream.last()
        assert (arrived.method, arrived.target) == (method, target)
        if body is not None:
            assert json.loads(arrived.body) == body


@pytest.mark.parametrize(
    ("method", "target", "kwargs"),
    [
        ("POST", "/v1/memories", {"json": {"content": "x", "layer": "nope"}}),
        ("POST", "/v1/memories", {"json": {"content": "x", "unexpected": 1}}),
        ("POST", "/v1/memories", {"json": {"content": "   "}}),
        ("POST", "/v1/memories", {"content": b"not json", "headers": {"content-type": "application/json"}}),
        ("POST", "/v1/memories/batch", {"json": {"items": []}}),
        ("POST", "/v1/memories/ingest", {"json": {"text": "no filename"}}),
        ("POST", "/v1/memories/ingest", {"files": {"other": ("a.txt", b"x")}}),
        ("POST", "/v1/memories/ingest", {"files": {"file": ("a.txt", b"x")}, "data": {"layer": "nope"}}),
        (
            "POST",
            "/v1/memories/ingest",
            {"files": {"file": ("a.txt", b"x")}, "data": {"tags": "ok," + "x" * 101}},
        ),
        ("POST", "/v1/memories/ingest", {"files": {"file": ("a.txt", b"x")}, "data": {"colour": "red"}}),
        ("POST", "/v1/memories/ingest", {"files": {"file": ("a.txt", b"x")}, "data": {"metadata": "[1, 2]"}}),
        ("POST", "/v1/memories/ingest", {"files": {"file": ("a.txt", b"x")}, "data": {"metadata": "{bad"}}),
        ("GET", "/v1/memories?limit=0", {}),
        ("GET", "/v1/memories?limit=201", {}),
        ("GET", "/v1/memories?metadata=novalue", {}),
        ("GET", "/v1/memories?layer=nope", {}),
        ("GET", "/v1/memories/not-a-uuid", {}),
        ("PATCH", f"/v1/memories/{uuid.uuid4()}", {"json": {"importance": 2}}),
        ("DELETE", "/v1/memories", {}),
        ("POST", "/v1/search/hybrid", {"json": {"query": ""}}),
        ("POST", "/v1/search/hybrid", {"json": {"query": "x", "k": 1000}}),
        ("POST", "/v1/ml/embed", {"json": {"texts": []}}),
        ("POST", "/v1/ml/embed", {"json": {"texts": ["ok", "   "]}}),
        ("GET", "/v1/events/log?limit=100000", {}),
    ],
)
async def test_bad_requests_are_422_and_never_reach_the_service(
    gateway: httpx.AsyncClient, upstream, bearer, method: str, target: str, kwargs: dict
) -> None:
    headers = {
        **bearer("memories:read", "memories:write", "ml:use", "events:read"),
        **kwargs.pop("headers", {}),
    }
    response = await gateway.request(method, target, headers=headers, **kwargs)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]
    assert upstream.requests == []


async def test_ingestion_of_another_media_type_is_415(gateway: httpx.AsyncClient, upstream, bearer) -> None:
    response = await gateway.post(
        "/v1/memories/ingest", content=b"plain", headers={**bearer(*WRITE), "content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert upstream.requests == []


async def test_oversized_body_is_413(make_settings, bearer) -> None:
    async with serve_app(create_app(make_settings(max_body_bytes=100))) as client:
        response = await client.post("/v1/memories", json={"content": "x" * 200}, headers=bearer(*WRITE))
    assert response.status_code == 413


RULE = {"type": "memory_count", "name": "reflect often", "params": {"every": 5}}


async def test_event_rules_need_events_write_and_a_valid_rule(
    gateway: httpx.AsyncClient, upstream, bearer
) -> None:
    reader = bearer("events:read", tenant="acme")
    assert (await gateway.post("/v1/events/rules", json=RULE, headers=reader)).status_code == 403
    writer = bearer("events:write", tenant="acme")
    bad = await gateway.post("/v1/events/rules", json={**RULE, "type": "weather"}, headers=writer)
    assert bad.status_code == 422
    count = len(upstream.requests)
    created = await gateway.post("/v1/events/rules", json=RULE, headers=writer)
    assert created.status_code == 201, created.text
    assert len(upstream.requests) == count + 1  # the invalid rule never reached the service
    arrived = upstream.last()
    assert (arrived.method, arrived.target) == ("POST", "/v1/events/rules")
    assert arrived.headers["x-tenant-id"] == "acme"
    assert json.loads(arrived.body) == RULE


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v1/events/rules?limit=5", "events:read"),
        ("GET", f"/v1/events/rules/{uuid.UUID(int=1)}", "events:read"),
        ("PUT", f"/v1/events/rules/{uuid.UUID(int=1)}", "events:write"),
        ("DELETE", f"/v1/events/rules/{uuid.UUID(int=1)}", "events:write"),
        ("GET", "/v1/events/triggers?status=delivered", "events:read"),
        ("GET", "/v1/events/dlq", "events:read"),
        ("POST", f"/v1/events/dlq/{uuid.UUID(int=2)}/replay", "events:write"),
    ],
)
async def test_event_engine_routes_forward_with_their_scope(
    gateway: httpx.AsyncClient, upstream, bearer, method: str, path: str, scope: str
) -> None:
    body = RULE if method == "PUT" else None
    response = await gateway.request(method, path, json=body, headers=bearer(scope, tenant="acme"))
    assert response.status_code < 300, response.text
    assert (upstream.last().method, upstream.last().target) == (method, path)
    assert upstream.last().headers["x-tenant-id"] == "acme"
    other = "events:write" if scope == "events:read" else "events:read"
    refused = await gateway.request(method, path, json=body, headers=bearer(other, tenant="acme"))
    assert refused.status_code == 403
