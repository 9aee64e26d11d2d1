"""A call that used nothing (every vector from the cache) queues no `llm.usage` event."""

from __future__ import annotations

import uuid

import asyncpg

from rae_common.testing import serve_app


async def usage_rows(dsn: str, request_id: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM ml.outbox WHERE payload::jsonb ->> 'idempotency_key' LIKE $1",
            request_id + ".%",
        )
        return count
    finally:
        await conn.close()


async def test_a_fully_cached_embed_costs_nothing_and_queues_no_event(ml_app, tenant, infra_env) -> None:
    text = f"cached usage probe {uuid.uuid4().hex}"
    first, second = f"req-{uuid.uuid4().hex}", f"req-{uuid.uuid4().hex}"
    async with serve_app(ml_app(usage_rollup_window_s=0)) as client:  # one event per call
        miss = await client.post(
            "/v1/ml/embed", json={"texts": [text]}, headers={**tenant, "X-Request-ID": first}
        )
        hit = await client.post(
            "/v1/ml/embed", json={"texts": [text]}, headers={**tenant, "X-Request-ID": second}
        )
    assert miss.status_code == 200 and hit.status_code == 200, (miss.text, hit.text)
    assert miss.json()["usage"]["prompt_tokens"] > 0
    assert hit.json()["cached"] == 1 and hit.json()["usage"]["total_tokens"] == 0
    assert hit.json()["vectors"] == miss.json()["vectors"]
    # The outbox row is written before the answer: what is not there now never will be.
    assert await usage_rows(infra_env["DATABASE_URL"], first) == 1
    assert await usage_rows(infra_env["DATABASE_URL"], second) == 0
