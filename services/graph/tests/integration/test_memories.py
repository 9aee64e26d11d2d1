"""The graph built from real memories: memory service -> Kafka -> graph consumer -> Bolt server."""

from __future__ import annotations

from typing import Any

import httpx

from rae_common.events import TOPIC_GRAPH, TOPIC_MEMORY
from rae_common.messaging import KafkaPublisher

from .conftest import call, events_of, eventually


async def remember(memories: httpx.AsyncClient, tenant: dict[str, str], content: str) -> str:
    memory: dict[str, Any] = await call(
        memories, "POST", "/v1/memories", tenant, 201, json={"content": content}
    )
    return str(memory["id"])


async def edges_of(graph: httpx.AsyncClient, tenant: dict[str, str], memory_id: str) -> list[dict[str, Any]]:
    page = await call(graph, "GET", "/v1/graph/edges", tenant, params={"memory_id": memory_id})
    items: list[dict[str, Any]] = page["items"]
    return items


async def merged(graph: httpx.AsyncClient, tenant: dict[str, str], memory_id: str) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        return await edges_of(graph, tenant, memory_id) or None

    return await eventually(check, what=f"edges of memory {memory_id}")


async def test_graph_search_finds_what_hybrid_search_ranks_lower(
    graph: httpx.AsyncClient, memories: httpx.AsyncClient, tenant: dict[str, str], bootstrap: str
) -> None:
    works = await remember(memories, tenant, "Alice Smith works at Acme Labs.")
    based = await remember(memories, tenant, "Acme Labs is based in Berlin.")
    for distractor in (
        "Alice Wong studied at Oxford University and smiles a lot.",
        "Jada Smith lives in Los Angeles.",
        "Alice and Smith are common names; Alice Smith is a name a colleague once misspelt.",
    ):
        await remember(memories, tenant, distractor)
    # Every memory merged in, distractors included: one graph.updated each.
    assert len(await events_of(bootstrap, TOPIC_GRAPH, tenant["X-Tenant-ID"], 5)) == 5
    assert await edges_of(graph, tenant, works) and await edges_of(graph, tenant, based)

    query = {"query": "Alice Smith", "k": 5}
    hybrid = await call(memories, "POST", "/v1/search/hybrid", tenant, json=query)
    found = await call(graph, "POST", "/v1/search/graph", tenant, json=query)

    hybrid_ids = [r["id"] for r in hybrid["results"]]
    graph_ids = [r["id"] for r in found["results"]]
    assert graph_ids.index(based) == 1
    assert based not in hybrid_ids or graph_ids.index(based) < hybrid_ids.index(based)
    assert [e["name"] for e in found["entities"]] == ["Alice Smith"]
    by_id = {r["id"]: r for r in found["results"]}
    assert [(s["source"], s["relation"], s["target"]) for s in by_id[based]["path"]] == [
        ("Alice Smith", "WORKS_AT", "Acme Labs"),
        ("Acme Labs", "BASED_IN", "Berlin"),
    ]
    assert by_id[based]["content"] == "Acme Labs is based in Berlin."


async def test_deleting_a_memory_prunes_what_only_it_supported(
    graph: httpx.AsyncClient,
    memories: httpx.AsyncClient,
    tenant: dict[str, str],
    bootstrap: str,
) -> None:
    first = await remember(memories, tenant, "Alice Smith works at Acme Labs. Alice Smith lives in Paris.")
    second = await remember(memories, tenant, "Alice Smith lives in Paris and likes green tea.")
    await merged(graph, tenant, first)
    await merged(graph, tenant, second)
    paris = [e for e in await edges_of(graph, tenant, first) if e["relation"] == "LIVES_IN"]
    assert sorted(paris[0]["memory_ids"]) == sorted([first, second])

    await call(memories, "DELETE", f"/v1/memories/{first}", tenant, 204)

    async def pruned() -> bool | None:
        return True if not await edges_of(graph, tenant, first) else None

    await eventually(pruned, what="the deleted memory's edges pruned")
    edges = (await call(graph, "GET", "/v1/graph/edges", tenant))["items"]
    assert sorted(e["relation"] for e in edges) == ["LIKES", "LIVES_IN"]
    assert all(e["memory_ids"] == [second] for e in edges)
    names = {n["name"] for n in (await call(graph, "GET", "/v1/graph/nodes", tenant))["items"]}
    assert names == {"Alice Smith", "Paris", "green tea"}  # Acme Labs had nothing left

    updates = await events_of(bootstrap, TOPIC_GRAPH, tenant["X-Tenant-ID"], 3)
    by_memory = {(str(e.data.memory_id), e.data.edges_pruned): e.data for e in updates}  # type: ignore[attr-defined]
    assert by_memory[(first, 0)].edges_created == 2  # type: ignore[attr-defined]
    assert by_memory[(first, 1)].nodes_pruned == 1  # type: ignore[attr-defined]


async def test_an_erasure_prunes_at_once_and_its_event_finds_nothing_left(
    graph: httpx.AsyncClient, memories: httpx.AsyncClient, tenant: dict[str, str], bootstrap: str
) -> None:
    first = await remember(memories, tenant, "Erin Blake works at Birch Labs. Erin Blake lives in Oslo.")
    second = await remember(memories, tenant, "Erin Blake lives in Oslo and likes black tea.")
    await merged(graph, tenant, first)
    await merged(graph, tenant, second)
    other = {"X-Tenant-ID": "t-elsewhere"}
    nothing = await call(graph, "POST", "/v1/graph/forget", other, json={"memory_ids": [first]})
    assert nothing == {"edges_pruned": 0, "nodes_pruned": 0}

    # What the erasure asks before it deletes the memory: the edge only it supported and the
    # entity left with nothing go now; the edge the other memory states too keeps that one.
    forgotten = await call(graph, "POST", "/v1/graph/forget", tenant, json={"memory_ids": [first]})
    assert forgotten == {"edges_pruned": 1, "nodes_pruned": 1}
    assert await edges_of(graph, tenant, first) == []
    edges = (await call(graph, "GET", "/v1/graph/edges", tenant))["items"]
    assert sorted((e["relation"], tuple(e["memory_ids"])) for e in edges) == [
        ("LIKES", (second,)),
        ("LIVES_IN", (second,)),
    ]
    names = {n["name"] for n in (await call(graph, "GET", "/v1/graph/nodes", tenant))["items"]}
    assert names == {"Erin Blake", "Oslo", "black tea"}

    # The memory.deleted that follows prunes nothing more (announced with zero counts).
    await call(memories, "DELETE", f"/v1/memories/{first}", tenant, 204)
    updates = await events_of(bootstrap, TOPIC_GRAPH, tenant["X-Tenant-ID"], 4)
    assert [(u.data.edges_pruned, u.data.nodes_pruned) for u in updates[2:]] == [(1, 1), (0, 0)]  # type: ignore[attr-defined]
    assert (await call(graph, "GET", "/v1/graph/edges", tenant))["items"] == edges


async def test_a_newer_memory_closes_the_old_fact_and_its_deletion_reopens_it(
    graph: httpx.AsyncClient, memories: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    old = await remember(memories, tenant, "Bob Jones lives in London.")
    await merged(graph, tenant, old)
    new = await remember(memories, tenant, "Bob Jones moved to Lisbon.")
    await merged(graph, tenant, new)
    current = await call(graph, "GET", "/v1/graph/edges", tenant, params={"current": True})
    assert [e["target"] for e in current["items"]] == ["Lisbon"]

    await call(memories, "DELETE", f"/v1/memories/{new}", tenant, 204)

    async def reopened() -> list[dict[str, Any]] | None:
        items = (await call(graph, "GET", "/v1/graph/edges", tenant, params={"current": True}))["items"]
        return items if [e["target"] for e in items] == ["London"] else None

    london = await eventually(reopened, what="the London edge open again")
    assert london[0]["valid_to"] is None and london[0]["expired_at"] is None


async def test_a_redelivered_event_changes_the_graph_once(
    graph: httpx.AsyncClient, memories: httpx.AsyncClient, tenant: dict[str, str], bootstrap: str
) -> None:
    memory_id = await remember(memories, tenant, "Carol White leads Project Falcon.")
    await merged(graph, tenant, memory_id)
    original = (await events_of(bootstrap, TOPIC_MEMORY, tenant["X-Tenant-ID"], 1))[0]
    publisher = KafkaPublisher(bootstrap, client_id="graph-test")
    try:
        await publisher.publish(original)
        # A later event of the same tenant (same partition) proves the redelivery was handled.
        marker = await remember(memories, tenant, "Dan Brown lives in Rome.")
        await merged(graph, tenant, marker)
    finally:
        await publisher.stop()
    updates = await events_of(bootstrap, TOPIC_GRAPH, tenant["X-Tenant-ID"], 3, timeout_s=5)
    assert sorted(str(e.data.memory_id) for e in updates) == sorted([memory_id, marker])  # type: ignore[attr-defined]
    edges = await edges_of(graph, tenant, memory_id)
    assert [(e["relation"], e["memory_ids"]) for e in edges] == [("LEADS", [memory_id])]
