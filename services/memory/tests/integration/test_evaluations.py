from __future__ import annotations

import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rae_common.events import TOPIC_MEMORY
from rae_memory.main import MemorySettings

FACTS = {
    "sailing": "Carol sails her small boat around the fjord every summer weekend.",
    "espresso": "Dave drinks a double espresso before every morning meeting.",
    "kubernetes": "The deployment runs on a Kubernetes cluster with three worker nodes.",
    "violin": "Erin has practised the violin for twenty years and plays in an orchestra.",
}


async def store(client: httpx.AsyncClient, tenant: dict[str, str]) -> dict[str, str]:
    ids = {}
    for name, text in FACTS.items():
        response = await client.post(
            "/v1/memories", json={"content": text, "layer": "semantic"}, headers=tenant
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    return ids


async def evaluate(client: httpx.AsyncClient, tenant: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/evaluations", json=body, headers=tenant)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def eval_events(
    bootstrap: str, tenant: str, expected: int, timeout_s: float = 20
) -> list[dict[str, Any]]:
    """The tenant's `eval.completed` events on the memory topic, once `expected` arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(TOPIC_MEMORY, p) for p in consumer.partitions_for_topic(TOPIC_MEMORY) or ()]
        assert tps, f"{TOPIC_MEMORY} is unknown to the broker"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if record.key == tenant.encode() and record.value:
                        doc = json.loads(record.value)
                        if doc["type"] == "eval.completed":
                            found.append(doc)
        return found
    finally:
        await consumer.stop()


async def test_scores_the_hybrid_search_stores_the_run_and_announces_it(
    client: httpx.AsyncClient, tenant: dict[str, str], memory_settings: MemorySettings
) -> None:
    ids = await store(client, tenant)
    missing = str(uuid.uuid4())  # relevant, but no memory: never retrieved
    run = await evaluate(
        client,
        tenant,
        {
            "k": 2,
            "cases": [
                {"query": "who sails a boat on the fjord", "relevant_ids": [ids["sailing"]]},
                {"query": "double espresso before meetings", "relevant_ids": [ids["espresso"], missing]},
            ],
        },
    )
    sailing, espresso = run["cases"]
    assert sailing["retrieved_ids"][0] == ids["sailing"]
    assert (sailing["recall_at_k"], sailing["reciprocal_rank"], sailing["ndcg_at_k"]) == (1.0, 1.0, 1.0)
    assert espresso["retrieved_ids"][0] == ids["espresso"]
    assert espresso["recall_at_k"] == 0.5
    assert espresso["reciprocal_rank"] == 1.0
    assert 0 < espresso["ndcg_at_k"] < 1
    assert run["k"] == 2 and run["case_count"] == 2
    assert run["recall_at_k"] == pytest.approx(0.75)
    assert run["mrr"] == pytest.approx(1.0)
    assert run["ndcg_at_k"] == pytest.approx((1 + espresso["ndcg_at_k"]) / 2)

    stored = await client.get(f"/v1/evaluations/{run['id']}", headers=tenant)
    assert stored.status_code == 200
    assert stored.json() == run

    events = await eval_events(memory_settings.kafka_bootstrap_servers, tenant["X-Tenant-ID"], 1)
    assert len(events) == 1
    data = events[0]["data"]
    assert data["evaluation_id"] == run["id"]
    assert (data["k"], data["cases"]) == (2, 2)
    assert data["recall_at_k"] == pytest.approx(0.75)
    assert data["mrr"] == pytest.approx(1.0)
    assert data["ndcg_at_k"] == pytest.approx(run["ndcg_at_k"])


async def test_a_bad_ranking_scores_low(client: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    ids = await store(client, tenant)
    run = await evaluate(
        client,
        tenant,
        {"k": 1, "cases": [{"query": "violin orchestra practice", "relevant_ids": [ids["kubernetes"]]}]},
    )
    assert run["cases"][0]["retrieved_ids"] == [ids["violin"]]
    assert (run["recall_at_k"], run["mrr"], run["ndcg_at_k"]) == (0.0, 0.0, 0.0)


async def test_runs_belong_to_their_tenant(
    client: httpx.AsyncClient, tenant: dict[str, str], memory_settings: MemorySettings
) -> None:
    ids = await store(client, tenant)
    run = await evaluate(client, tenant, {"cases": [{"query": "boat", "relevant_ids": [ids["sailing"]]}]})
    other = {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}
    response = await client.get(f"/v1/evaluations/{run['id']}", headers=other)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    conn = await asyncpg.connect(memory_settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", other["X-Tenant-ID"])
            assert await conn.fetchval("SELECT count(*) FROM memory.evaluations") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "body",
    [
        {"cases": []},
        {"cases": [{"query": "x", "relevant_ids": []}]},
        {"cases": [{"query": "  ", "relevant_ids": [str(uuid.uuid4())]}]},
        {"cases": [{"query": "x", "relevant_ids": ["not-a-uuid"]}]},
        {"cases": [{"query": "x", "relevant_ids": [str(uuid.uuid4())]}], "k": 0},
        {"cases": [{"query": "x", "relevant_ids": [str(uuid.uuid4())]}], "extra": 1},
    ],
)
async def test_bad_input_is_a_problem(
    client: httpx.AsyncClient, tenant: dict[str, str], body: dict[str, Any]
) -> None:
    response = await client.post("/v1/evaluations", json=body, headers=tenant)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_evaluation_is_404(client: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    response = await client.get(f"/v1/evaluations/{uuid.uuid4()}", headers=tenant)
    assert response.status_code == 404
    assert response.json()["type"].endswith("evaluation-not-found")
