"""The memory API end to end: API keys from the admin API, ingestion, search, tenant isolation."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from rae_localstack import Stack

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def new_tenant(gateway: httpx.AsyncClient, suite: Stack):
    async def make(scopes=("memories:read", "memories:write")) -> dict[str, str]:
        admin = {"Authorization": f"Bearer {suite.service_env()['RAE_ADMIN_TOKEN']}"}
        tenant = f"e2e-{uuid.uuid4().hex[:8]}"
        assert (
            await gateway.post("/v1/admin/tenants", json={"id": tenant}, headers=admin)
        ).status_code == 201
        key = await gateway.post(
            f"/v1/admin/tenants/{tenant}/api-keys",
            json={"name": "e2e", "scopes": list(scopes)},
            headers=admin,
        )
        assert key.status_code == 201, key.text
        return {"X-API-Key": key.json()["key"]}

    return make


async def test_ingested_document_is_searchable_and_private(gateway: httpx.AsyncClient, suite: Stack) -> None:
    make = new_tenant(gateway, suite)
    owner, intruder = await make(), await make()
    path = SAMPLES / "team-handbook.md"
    ingested = await gateway.post(
        "/v1/memories/ingest",
        files={"file": (path.name, path.read_bytes(), "text/markdown")},
        data={"tags": "handbook"},
        headers=owner,
    )
    assert ingested.status_code == 201, ingested.text
    body = ingested.json()
    assert body["kind"] == "markdown" and body["chunk_count"] == len(body["memory_ids"]) > 1

    hits = await gateway.post("/v1/search/hybrid", json={"query": "team handbook", "k": 5}, headers=owner)
    assert hits.status_code == 200
    assert hits.headers["x-ratelimit-limit"]
    results = hits.json()["results"]
    assert results and all(r["metadata"]["document"] == "team-handbook.md" for r in results)

    # The other tenant sees none of it: search, list, read, update, delete.
    assert (
        await gateway.post("/v1/search/hybrid", json={"query": "team handbook"}, headers=intruder)
    ).json() == {"results": []}
    assert (await gateway.get("/v1/memories", headers=intruder)).json()["items"] == []
    memory_id = body["memory_ids"][0]
    for response in (
        await gateway.get(f"/v1/memories/{memory_id}", headers=intruder),
        await gateway.patch(f"/v1/memories/{memory_id}", json={"importance": 1}, headers=intruder),
        await gateway.delete(f"/v1/memories/{memory_id}", headers=intruder),
    ):
        assert response.status_code == 404
    assert (await gateway.get(f"/v1/memories/{memory_id}", headers=owner)).status_code == 200


async def test_unsupported_and_empty_documents_store_nothing(
    gateway: httpx.AsyncClient, suite: Stack
) -> None:
    headers = await new_tenant(gateway, suite)()
    png = await gateway.post(
        "/v1/memories/ingest",
        files={"file": ("x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")},
        headers=headers,
    )
    assert png.status_code == 415
    assert png.headers["content-type"] == "application/problem+json"
    empty = await gateway.post(
        "/v1/memories/ingest", json={"text": "   ", "filename": "a.txt"}, headers=headers
    )
    assert empty.status_code == 422
    assert (await gateway.get("/v1/memories", headers=headers)).json()["items"] == []


async def test_read_only_key_cannot_write(gateway: httpx.AsyncClient, suite: Stack) -> None:
    reader = await new_tenant(gateway, suite)(scopes=("memories:read",))
    response = await gateway.post("/v1/memories", json={"content": "nope"}, headers=reader)
    assert response.status_code == 403
