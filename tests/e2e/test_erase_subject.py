"""End to end: erasing a subject through the gateway leaves nothing about it findable — not its
memories, not the document it was ingested from, not the reflections written from them (in the
reflection service and as `reflective` memories), not the graph built from them, not the cached
embeddings of their texts — while everything else stays; the answer counts what went and an
audit row records the erasure without its content (issue #16, finding 7)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from rae_common.auth import issue_token
from rae_localstack import Stack

pytestmark = pytest.mark.e2e

SCOPES = (
    "memories:write",
    "memories:read",
    "graph:read",
    "reflections:read",
    "reflections:write",
    "ml:use",
)


def bearer(secret: str, tenant: str, *scopes: str) -> dict[str, str]:
    token = issue_token(secret, subject="e2e-eraser", tenant_id=tenant, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.5)


def mentions_lena(value: Any) -> bool:
    return "lena" in str(value).lower()


async def test_erasing_a_subject_leaves_nothing_about_it(
    suite: Stack, gateway: httpx.AsyncClient, jwt_secret: str
) -> None:
    tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    note = uuid.uuid4().hex[:6]  # texts unique to this run: the embedding cache is shared
    headers = bearer(jwt_secret, tenant, *SCOPES)
    about_lena = [
        f"Lena Hoffmann is allergic to peanuts and carries an epinephrine pen (note {note}).",
        f"Lena Hoffmann had a severe allergic reaction to peanut sauce last spring (note {note}).",
        f"Lena Hoffmann works at Nordwind Bakery (note {note}).",
        f"Lena Hoffmann lives in Hamburg (note {note}).",
    ]
    unrelated = [
        f"Tomasz Nowak works at Kestrel Systems (note {note}).",
        f"Kestrel Systems is based in Warsaw (note {note}).",
        f"Tomasz Nowak enjoys climbing on weekends (note {note}).",
    ]
    stored = await gateway.post(
        "/v1/memories/batch",
        json={"items": [{"content": c, "subject": "lena"} for c in about_lena]},
        headers=headers,
        timeout=60,
    )
    assert stored.status_code == 201, stored.text
    lena_ids = {m["id"] for m in stored.json()["items"]}
    content_of = {m["id"]: m["content"] for m in stored.json()["items"]}
    stored = await gateway.post(
        "/v1/memories/batch", json={"items": [{"content": c} for c in unrelated]}, headers=headers, timeout=60
    )
    assert stored.status_code == 201, stored.text
    other_ids = {m["id"] for m in stored.json()["items"]}
    content_of |= {m["id"]: m["content"] for m in stored.json()["items"]}
    # The memories that state a relation: each becomes an edge in the graph.
    relating = {
        i for i, c in content_of.items() if " works at " in c or " lives in " in c or " based in " in c
    }
    document = await gateway.post(
        "/v1/memories/ingest",
        json={
            "text": f"# Health notes\n\nLena Hoffmann's peanut allergy was confirmed in 2019 (note {note}).",
            "filename": "lena-health.md",
            "subject": "lena",
        },
        headers=headers,
        timeout=60,
    )
    assert document.status_code == 201, document.text
    chunk_ids = set(document.json()["memory_ids"])

    # The graph has taken in every memory (each states a relation), and reflection has written
    # at least one reflection from Lena's memories.
    async def edges_of(memory_id: str) -> list[dict[str, Any]]:
        response = await gateway.get("/v1/graph/edges", params={"memory_id": memory_id}, headers=headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def graph_has(ids: set[str]) -> bool:
        return all([await edges_of(i) for i in ids])

    await eventually(lambda: graph_has(relating), "the memories never reached the graph")
    triggered = await gateway.post("/v1/reflections/trigger", json={"reason": "e2e erase"}, headers=headers)
    assert triggered.status_code == 202, triggered.text

    async def reflections() -> list[dict[str, Any]]:
        response = await gateway.get("/v1/reflections", params={"limit": 100}, headers=headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def reflected_on_lena() -> bool:
        return any(set(r["source_ids"]) & (lena_ids | chunk_ids) for r in await reflections())

    await eventually(reflected_on_lena, "no reflection on Lena's memories")
    lena_reflections = {r["id"] for r in await reflections() if set(r["source_ids"]) & (lena_ids | chunk_ids)}
    before = await gateway.post("/v1/ml/embed", json={"texts": about_lena}, headers=headers)
    assert before.status_code == 200 and before.json()["cached"] == len(about_lena), before.text

    erased = await gateway.delete("/v1/memories", params={"subject": "lena"}, headers=headers, timeout=60)
    assert erased.status_code == 200, erased.text
    answer = erased.json()
    erased_ids = lena_ids | chunk_ids | lena_reflections
    assert answer["subject"] == "lena"
    assert answer["memories"] == answer["deleted"] == len(erased_ids), answer
    assert answer["documents"] == 1, answer
    assert answer["reflections"] == len(lena_reflections), answer
    assert answer["graph_edges"] >= 2 and answer["graph_entities"] >= 2, answer
    assert answer["cache_entries"] >= len(about_lena), answer
    assert answer["pending"] == [], answer

    # Nothing about Lena answers any more: memories, documents, searches, reflections, graph.
    listed = await gateway.get("/v1/memories", params={"limit": 200}, headers=headers)
    assert listed.status_code == 200, listed.text
    remaining = listed.json()["items"]
    assert not [m for m in remaining if mentions_lena(m["content"]) or m["id"] in erased_ids]
    assert not [m for m in remaining if m.get("document_id") or m["subject"] == "lena"]
    assert other_ids <= {m["id"] for m in remaining}
    for memory_id in lena_ids | lena_reflections:
        assert (await gateway.get(f"/v1/memories/{memory_id}", headers=headers)).status_code == 404
    query = {"query": "Lena Hoffmann peanut allergy", "k": 10}
    hybrid = await gateway.post("/v1/search/hybrid", json=query, headers=headers)
    assert hybrid.status_code == 200, hybrid.text
    assert not [r for r in hybrid.json()["results"] if mentions_lena(r["content"])], hybrid.json()
    left = await reflections()
    assert not [r for r in left if mentions_lena(r["content"]) or set(r["source_ids"]) & erased_ids], left
    for reflection_id in lena_reflections:
        gone = await gateway.get(f"/v1/reflections/{reflection_id}", headers=headers)
        assert gone.status_code == 404, gone.text

    async def graph_forgot_lena() -> bool:
        found = await gateway.post("/v1/search/graph", json=query, headers=headers)
        assert found.status_code == 200, found.text
        nodes = await gateway.get("/v1/graph/nodes", params={"name": "lena", "limit": 100}, headers=headers)
        assert nodes.status_code == 200, nodes.text
        subgraph = await gateway.get(
            "/v1/graph/subgraph", params={"entity": "Lena Hoffmann"}, headers=headers
        )
        edges = await gateway.get("/v1/graph/edges", params={"limit": 200}, headers=headers)
        return (
            not [r for r in found.json()["results"] if mentions_lena(r) or r["id"] in erased_ids]
            and not [e for e in found.json()["entities"] if mentions_lena(e["name"])]
            and nodes.json()["items"] == []
            and subgraph.status_code == 404
            and not [
                e for e in edges.json()["items"] if mentions_lena(e) or set(e["memory_ids"]) & erased_ids
            ]
        )

    # The erase answered after graph forgot; a memory.created still being merged when the erase
    # ran is undone by its memory.deleted right after (the same partition, in order).
    await eventually(graph_forgot_lena, "the graph still knows about Lena", timeout_s=30)

    # Everything else stays: the unrelated memories, their graph, their search results.
    assert await graph_has(relating & other_ids)
    kept = await gateway.post(
        "/v1/search/hybrid", json={"query": "Tomasz Nowak climbing", "k": 5}, headers=headers
    )
    assert {r["id"] for r in kept.json()["results"]} & other_ids
    tomasz = await gateway.get("/v1/graph/subgraph", params={"entity": "Tomasz Nowak"}, headers=headers)
    assert tomasz.status_code == 200, tomasz.text

    # The cached embeddings of the erased texts are gone (embedding them again computes them).
    after = await gateway.post("/v1/ml/embed", json={"texts": about_lena}, headers=headers)
    assert after.status_code == 200 and after.json()["cached"] == 0, after.text

    # The audit row: who erased, in which tenant, when, the counts; neither the subject nor any
    # erased text is in it.
    conn = await asyncpg.connect(suite.service_env()["DATABASE_URL"])
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant)
            rows = [
                dict(r)
                for r in await conn.fetch("SELECT * FROM memory.erasures WHERE tenant_id = $1", tenant)
            ]
            documents = await conn.fetchval(
                "SELECT count(*) FROM memory.documents WHERE tenant_id = $1", tenant
            )
    finally:
        await conn.close()
    assert documents == 0
    assert len(rows) == 1, rows
    audit = rows[0]
    assert audit["actor"] == "e2e-eraser" and audit["completed_at"] is not None
    assert audit["memories"] == answer["memories"] and audit["reflections"] == answer["reflections"]
    assert audit["subject_digest"] and audit["subject_digest"] != "lena"
    assert not mentions_lena(audit) and not [v for v in audit.values() if "peanut" in str(v)]
