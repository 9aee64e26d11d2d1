"""Embedding usage rolled up: one `llm.usage` per tenant and model and window, summing every call."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from rae_common.events import LlmUsage
from rae_common.testing import eventually, serve_app


async def queued_usage(dsn: str, tenant_id: str) -> list[dict[str, Any]]:
    """The `llm.usage` envelopes ml queued (outbox) for a tenant."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT payload FROM ml.outbox WHERE key = $1 ORDER BY created_at", tenant_id)
    finally:
        await conn.close()
    envelopes = [json.loads(r["payload"]) for r in rows]
    return [e for e in envelopes if e["type"] == "llm.usage"]


async def embed(client: Any, tenant_id: str, *texts: str) -> int:
    response = await client.post(
        "/v1/ml/embed", json={"texts": list(texts)}, headers={"X-Tenant-ID": tenant_id}
    )
    assert response.status_code == 200, response.text
    tokens: int = response.json()["usage"]["prompt_tokens"]
    assert tokens > 0  # each answer still reports its own usage
    return tokens


async def test_calls_of_a_window_become_one_event_per_tenant(ml_app, infra_env) -> None:
    dsn = infra_env["DATABASE_URL"]
    a, b = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    async with serve_app(ml_app(usage_rollup_window_s=0.3)) as client:
        a_tokens = sum([await embed(client, a, f"rolled up {i} {uuid.uuid4().hex}") for i in range(3)])
        a_tokens += await embed(client, a, f"two at once {uuid.uuid4().hex}", f"and more {uuid.uuid4().hex}")
        b_tokens = await embed(client, b, f"another tenant {uuid.uuid4().hex}")

        async def summed(tenant_id: str, calls: int) -> list[LlmUsage] | None:
            usages = [LlmUsage.model_validate(e["data"]) for e in await queued_usage(dsn, tenant_id)]
            return usages if sum(u.calls for u in usages) >= calls else None

        a_usage = await eventually(lambda: summed(a, 4), timeout_s=10, what="tenant a's roll-up")
        [b_usage] = await eventually(lambda: summed(b, 1), timeout_s=10, what="tenant b's roll-up")

    # Windows may split the calls, never lose or double them.
    assert sum(u.calls for u in a_usage) == 4 and len(a_usage) <= 2
    assert sum(u.prompt_tokens for u in a_usage) == a_tokens
    assert (b_usage.calls, b_usage.prompt_tokens) == (1, b_tokens)
    for usage in [*a_usage, b_usage]:
        assert usage.operation == "embed" and usage.provider == "local"
        assert usage.request_id.startswith("rollup.") and usage.trace_id is None
    envelope = (await queued_usage(dsn, b))[0]
    assert envelope["idempotency_key"] == b_usage.request_id


async def test_what_is_summed_at_shutdown_is_queued_then(ml_app, infra_env) -> None:
    dsn = infra_env["DATABASE_URL"]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    async with serve_app(ml_app(usage_rollup_window_s=60)) as client:
        tokens = await embed(client, tenant, f"before shutdown {uuid.uuid4().hex}")
        tokens += await embed(client, tenant, f"also before shutdown {uuid.uuid4().hex}")
        # Off the request's path: nothing is written while the window runs.
        assert await queued_usage(dsn, tenant) == []
    [envelope] = await queued_usage(dsn, tenant)
    usage = LlmUsage.model_validate(envelope["data"])
    assert (usage.calls, usage.prompt_tokens) == (2, tokens)


async def test_generation_is_never_rolled_up(ml_app, fake, infra_env) -> None:
    dsn = infra_env["DATABASE_URL"]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    async with serve_app(ml_app(usage_rollup_window_s=60)) as client:
        response = await client.post(
            "/v1/ml/generate",
            json={"messages": [{"role": "user", "content": "hi"}], "model": "fake-chat"},
            headers={"X-Tenant-ID": tenant},
        )
        assert response.status_code == 200, response.text
        [envelope] = await queued_usage(dsn, tenant)  # written before the answer
    assert envelope["data"]["operation"] == "generate" and envelope["data"]["calls"] == 1
