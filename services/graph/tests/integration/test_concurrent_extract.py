"""Concurrent writes of the same new entity (two extract calls, or an extract call beside the
memory consumer) both succeed and leave one node: found by a fuzzing run's concurrent requests,
which got 500s from the graph's uniqueness constraint (issue #16, finding 5)."""

from __future__ import annotations

import asyncio

import httpx


async def test_concurrent_stores_of_the_same_new_entities_all_succeed(
    graph: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    text = "Greta Lind works at Northwind. Omar Diaz lives in Oslo."
    answers = await asyncio.gather(
        *(
            graph.post("/v1/graph/extract", json={"text": text, "store": True}, headers=tenant)
            for _ in range(8)
        )
    )
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers if a.status_code != 200]
    nodes = (await graph.get("/v1/graph/nodes", params={"limit": 50}, headers=tenant)).json()["items"]
    assert sorted(n["name"] for n in nodes) == ["Greta Lind", "Northwind", "Omar Diaz", "Oslo"]
