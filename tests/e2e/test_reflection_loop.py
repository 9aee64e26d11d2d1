"""End to end, the self-maintaining loop: memories stored through the gateway make the event
engine request a reflection (default rule: every 20), the reflection service writes reflective
memories with provenance; and an evaluation scores hybrid search on labelled queries."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from rae_common.auth import issue_token
from rae_localstack import Stack

pytestmark = pytest.mark.e2e

FACTS = [
    "Priya leads project Orion and reviews its design every Monday.",
    "Priya prefers green tea in the morning and coffee after lunch.",
    "The Orion launch moved to Friday after the design review.",
    "Marco manages the Falcon budget and reports to Priya.",
    "Falcon's data pipeline runs nightly at two in the morning.",
]


def bearer(secret: str, tenant: str, *scopes: str) -> dict[str, str]:
    token = issue_token(secret, subject="e2e-agent", tenant_id=tenant, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


async def test_twenty_memories_become_a_reflection_with_its_sources(
    suite: Stack, gateway: httpx.AsyncClient, jwt_secret: str
) -> None:
    tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    headers = bearer(jwt_secret, tenant, "memories:write", "memories:read", "reflections:read", "events:read")
    items = [{"content": f"{FACTS[n % len(FACTS)]} (note {n})"} for n in range(20)]
    stored = await gateway.post("/v1/memories/batch", json={"items": items}, headers=headers, timeout=60)
    assert stored.status_code == 201, stored.text
    memory_ids = {m["id"] for m in stored.json()["items"]}
    assert len(memory_ids) == 20

    deadline = time.monotonic() + 60
    while True:
        listed = await gateway.get("/v1/reflections", headers=headers)
        assert listed.status_code == 200, listed.text
        reflections: list[dict[str, Any]] = listed.json()["items"]
        if reflections:
            break
        assert time.monotonic() < deadline, "no reflection 60 s after the 20th memory"
        await asyncio.sleep(0.5)

    sources = {s for r in reflections for s in r["source_ids"]}
    assert sources and sources <= memory_ids
    detail = await gateway.get(f"/v1/reflections/{reflections[0]['id']}", headers=headers)
    assert detail.status_code == 200, detail.text
    assert {m["id"] for m in detail.json()["sources"]} == set(reflections[0]["source_ids"])
    reflective = await gateway.get("/v1/memories", params={"layer": "reflective"}, headers=headers)
    assert {m["id"] for m in reflective.json()["items"]} >= {r["id"] for r in reflections}

    firings = await gateway.get("/v1/events/triggers", headers=headers)
    assert firings.status_code == 200, firings.text
    assert [f["rule_type"] for f in firings.json()["items"]].count("memory_count") == 1

    other = bearer(jwt_secret, f"e2e-{uuid.uuid4().hex[:8]}", "reflections:read")
    assert (await gateway.get("/v1/reflections", headers=other)).json()["items"] == []
    assert (await gateway.get(f"/v1/reflections/{reflections[0]['id']}", headers=other)).status_code == 404


async def test_an_evaluation_scores_search_on_labelled_queries(
    suite: Stack, gateway: httpx.AsyncClient, jwt_secret: str
) -> None:
    tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    headers = bearer(jwt_secret, tenant, "memories:write", "memories:read")
    stored = await gateway.post(
        "/v1/memories/batch", json={"items": [{"content": f} for f in FACTS]}, headers=headers, timeout=60
    )
    assert stored.status_code == 201, stored.text
    ids = [m["id"] for m in stored.json()["items"]]
    cases = [
        {"query": "What does Priya drink in the morning?", "relevant_ids": [ids[1]]},
        {"query": "When does the Falcon pipeline run?", "relevant_ids": [ids[4]]},
    ]
    run = await gateway.post("/v1/evaluations", json={"cases": cases, "k": 3}, headers=headers)
    assert run.status_code == 201, run.text
    body = run.json()
    assert body["recall_at_k"] == 1.0 and body["mrr"] > 0.5
    again = await gateway.get(f"/v1/evaluations/{body['id']}", headers=headers)
    assert again.status_code == 200 and again.json()["ndcg_at_k"] == body["ndcg_at_k"]
    bad = await gateway.post("/v1/evaluations", json={"cases": [], "k": 3}, headers=headers)
    assert bad.status_code == 422
