"""The graph API against the real Bolt server and the real ml service (offline extractor)."""

from __future__ import annotations

import httpx

from .conftest import call


async def store(graph: httpx.AsyncClient, tenant: dict[str, str], text: str) -> dict:
    return await call(graph, "POST", "/v1/graph/extract", tenant, json={"text": text, "store": True})


async def test_extracted_facts_become_a_queryable_graph(
    graph: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    result = await store(graph, tenant, "Alice Smith works at Acme Labs. Acme Labs is based in Berlin.")
    assert result["stored"]["nodes_created"] == 3 and result["stored"]["edges_created"] == 2
    assert {e["name"] for e in result["entities"]} == {"Alice Smith", "Acme Labs", "Berlin"}

    stats = await call(graph, "GET", "/v1/graph/stats", tenant)
    assert stats["nodes"] == 3 and stats["edges"] == 2 and stats["current_edges"] == 2
    assert stats["nodes_by_type"] == {"person": 1, "organization": 1, "location": 1}
    assert stats["edges_by_relation"] == {"WORKS_AT": 1, "BASED_IN": 1}

    people = await call(graph, "GET", "/v1/graph/nodes", tenant, params={"type": "person"})
    assert [n["name"] for n in people["items"]] == ["Alice Smith"]
    alice = people["items"][0]["id"]

    near = await call(graph, "GET", f"/v1/graph/nodes/{alice}/neighbors", tenant, params={"depth": 1})
    assert {n["name"] for n in near["nodes"]} == {"Alice Smith", "Acme Labs"}
    far = await call(graph, "GET", "/v1/graph/subgraph", tenant, params={"entity": "alice smith", "depth": 2})
    assert {n["name"] for n in far["nodes"]} == {"Alice Smith", "Acme Labs", "Berlin"}
    assert not far["truncated"]

    path = await call(graph, "GET", "/v1/graph/path", tenant, params={"from": "Berlin", "to": "Alice Smith"})
    assert path["found"] and [n["name"] for n in path["nodes"]] == ["Berlin", "Acme Labs", "Alice Smith"]
    assert [e["relation"] for e in path["edges"]] == ["BASED_IN", "WORKS_AT"]


async def test_the_same_entity_in_other_words_is_one_node(
    graph: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    await store(graph, tenant, "Alice Smith works at Acme Labs.")
    again = await store(graph, tenant, "ACME Labs is based in Berlin. Alice Smith likes green tea.")
    assert again["stored"]["nodes_merged"] == 2  # ACME Labs and Alice Smith were known
    names = [n["name"] for n in (await call(graph, "GET", "/v1/graph/nodes", tenant))["items"]]
    assert sorted(names) == ["Acme Labs", "Alice Smith", "Berlin", "green tea"]


async def test_a_contradicting_fact_closes_the_old_edge(
    graph: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    await store(graph, tenant, "Alice Smith works at Acme Labs.")
    changed = await store(graph, tenant, "Alice Smith works at Initech.")
    assert changed["stored"]["edges_closed"] == 1

    edges = (await call(graph, "GET", "/v1/graph/edges", tenant, params={"relation": "WORKS_AT"}))["items"]
    by_target = {e["target"]: e for e in edges}
    assert by_target["Acme Labs"]["valid_to"] == by_target["Initech"]["valid_from"]
    assert by_target["Acme Labs"]["expired_at"] is not None
    assert by_target["Initech"]["valid_to"] is None and by_target["Initech"]["expired_at"] is None
    current = await call(
        graph, "GET", "/v1/graph/edges", tenant, params={"relation": "WORKS_AT", "current": True}
    )
    assert [e["target"] for e in current["items"]] == ["Initech"]


async def test_lists_page_with_a_cursor(graph: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    await store(
        graph, tenant, "Alice Smith works at Acme Labs. Bob Jones lives in London. Carol White likes jazz."
    )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await call(graph, "GET", "/v1/graph/nodes", tenant, params=params)
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6


async def test_another_tenant_sees_nothing(graph: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    await store(graph, tenant, "Alice Smith works at Acme Labs.")
    alice = (await call(graph, "GET", "/v1/graph/nodes", tenant))["items"][0]["id"]
    other = {"X-Tenant-ID": tenant["X-Tenant-ID"] + "-other"}

    assert (await call(graph, "GET", "/v1/graph/nodes", other))["items"] == []
    assert (await call(graph, "GET", "/v1/graph/edges", other))["items"] == []
    assert (await call(graph, "GET", "/v1/graph/stats", other))["nodes"] == 0
    await call(graph, "GET", f"/v1/graph/nodes/{alice}/neighbors", other, 404)
    await call(graph, "GET", "/v1/graph/subgraph", other, 404, params={"entity": "Alice Smith"})
    # The other tenant's identical facts make nodes of its own.
    mine = await store(graph, other, "Alice Smith works at Acme Labs.")
    assert mine["stored"]["nodes_created"] == 2


async def test_bad_requests_are_problems(graph: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    for path, params in [
        ("/v1/graph/subgraph", {"entity": "Nobody Known"}),
        ("/v1/graph/path", {"from": "Nobody", "to": "Somebody"}),
    ]:
        response = await graph.get(path, params=params, headers=tenant)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/entity-not-found")
    for path, params in [
        ("/v1/graph/subgraph", {"entity": "x", "depth": 4}),
        ("/v1/graph/nodes", {"cursor": "not-a-cursor"}),
        ("/v1/graph/edges", {"relation": "lower case"}),
    ]:
        response = await graph.get(path, params=params, headers=tenant)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await graph.post("/v1/graph/extract", json={"text": "  "}, headers=tenant)).status_code == 422
    assert (
        await graph.post("/v1/search/graph", json={"query": "x", "k": 0}, headers=tenant)
    ).status_code == 422
    assert (await graph.get("/v1/graph/nodes")).status_code == 400


async def test_a_similar_name_resolves_onto_the_node_by_embedding(
    graph: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    await store(graph, tenant, "Alice Smith lives in New York.")
    result = await store(graph, tenant, "Bob Jones lives in New York City.")
    assert (result["stored"]["nodes_created"], result["stored"]["nodes_merged"]) == (1, 1)
    places = (await call(graph, "GET", "/v1/graph/nodes", tenant, params={"type": "location"}))["items"]
    assert [(p["name"], p["aliases"]) for p in places] == [("New York", ["New York City"])]
    # A similar but different person is not merged.
    await store(graph, tenant, "Alice Wong lives in New York.")
    people = (await call(graph, "GET", "/v1/graph/nodes", tenant, params={"type": "person"}))["items"]
    assert sorted(p["name"] for p in people) == ["Alice Smith", "Alice Wong", "Bob Jones"]


async def test_duplicates_an_alias_reveals_are_merged_with_their_edges(
    graph: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    await store(graph, tenant, "Alice likes jazz.")
    await store(graph, tenant, "Alice Smith works at Acme Labs.")
    assert (await call(graph, "GET", "/v1/graph/stats", tenant))["nodes_by_type"]["person"] == 2

    result = await store(graph, tenant, "Alice Smith lives in Paris. Alice likes jazz.")
    assert result["stored"]["edges_created"] == 1  # LIVES_IN; LIKES moved over and was supported
    people = (await call(graph, "GET", "/v1/graph/nodes", tenant, params={"type": "person"}))["items"]
    assert [(p["name"], p["aliases"]) for p in people] == [("Alice Smith", ["Alice"])]
    edges = (await call(graph, "GET", "/v1/graph/edges", tenant, params={"node_id": people[0]["id"]}))[
        "items"
    ]
    assert sorted(e["relation"] for e in edges) == ["LIKES", "LIVES_IN", "WORKS_AT"]
