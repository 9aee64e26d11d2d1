"""End to end: a model call through the gateway is accounted by the cost service under the same
trace, shows up in governance, and a spent budget answers 402 and announces `budget.exceeded`."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import httpx
import pytest

from rae_common.auth import issue_token
from rae_common.events import TOPIC_COST, registry
from rae_common.testing import OTLPReceiver, read_topic
from rae_localstack import Stack

pytestmark = pytest.mark.e2e

PROMPT = "Priya leads project Orion. She prefers green tea. The launch moved to Friday."


def bearer(secret: str, tenant: str, *scopes: str) -> dict[str, str]:
    token = issue_token(secret, subject="e2e-agent", tenant_id=tenant, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


async def poll(get: Any, ready: Any, what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await get()
        if ready(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_a_generate_call_is_accounted_under_its_trace_and_in_governance(
    suite: Stack, gateway: httpx.AsyncClient, otlp: OTLPReceiver, jwt_secret: str
) -> None:
    tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    trace_id = os.urandom(16).hex()
    headers = {
        **bearer(jwt_secret, tenant, "ml:use", "governance:read"),
        "traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01",
    }
    answer = await gateway.post(
        "/v1/ml/generate", json={"messages": [{"role": "user", "content": PROMPT}]}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    assert usage["total_tokens"] > 0 and usage["provider"] == "local"

    async def logs() -> list[dict[str, Any]]:
        response = await gateway.get("/v1/cost/logs", headers=headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    items = await poll(logs, bool, "the call's cost log")
    assert len(items) == 1
    assert items[0]["trace_id"] == trace_id
    assert items[0]["input_tokens"] == usage["prompt_tokens"]
    assert items[0]["output_tokens"] == usage["completion_tokens"]
    assert items[0]["request_id"].startswith(answer.headers["x-request-id"] + ".")

    governance = await gateway.get(f"/v1/governance/tenant/{tenant}", headers=headers)
    assert governance.status_code == 200, governance.text
    body = governance.json()
    assert body["current"]["day"]["tokens"] == usage["total_tokens"]
    assert [(u["model"], u["calls"]) for u in body["usage"]] == [(usage["model"], 1)]

    # The ml span that recorded the cost belongs to the same trace as the HTTP request.
    async def ml_spans() -> list[Any]:
        return [
            s
            for s in otlp.in_trace(trace_id)
            if s.service == "ml" and s.attributes.get("gen_ai.usage.input_tokens") == usage["prompt_tokens"]
        ]

    spans = await poll(ml_spans, bool, "the ml span with the usage attributes")
    assert spans[0].attributes["gen_ai.request.model"] == usage["model"]


async def test_a_spent_budget_answers_402_and_announces_budget_exceeded(
    suite: Stack, gateway: httpx.AsyncClient, jwt_secret: str
) -> None:
    env = suite.service_env()
    admin = {"Authorization": f"Bearer {env['RAE_ADMIN_TOKEN']}"}
    tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    headers = bearer(jwt_secret, tenant, "ml:use")
    put = await gateway.put(
        f"/v1/governance/tenant/{tenant}/budget", json={"daily_tokens": 120}, headers=admin
    )
    assert put.status_code == 200, put.text
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 30}

    statuses = []
    for _ in range(15):
        response = await gateway.post("/v1/ml/generate", json=body, headers=headers)
        statuses.append(response.status_code)
        if response.status_code == 402:
            break
    assert statuses[-1] == 402 and set(statuses[:-1]) == {200}, statuses
    problem = response.json()
    assert (problem["period"], problem["metric"], problem["limit"]) == ("day", "tokens", 120)

    async def exceeded() -> list[Any]:
        records = await read_topic(env["KAFKA_BOOTSTRAP_SERVERS"], TOPIC_COST, 10**9, timeout_s=1)
        events = (registry.parse(r.value or b"") for r in records)
        return [e for e in events if e.tenant_id == tenant and e.type == "budget.exceeded"]

    announced = await poll(exceeded, bool, "budget.exceeded on rae.cost.v1")
    assert len(announced) == 1
    assert announced[0].data.period == "day" and announced[0].data.metric == "tokens"
