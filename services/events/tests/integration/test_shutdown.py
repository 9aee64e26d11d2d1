"""The events service's own background loops stop within their budget (issue #16): a webhook call
to a receiver that never answers does not hold the shutdown for the webhook timeout."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from rae_common.background import CANCEL_WAIT_S
from rae_common.db import tenant_tx
from rae_common.messaging import KafkaPublisher
from rae_common.testing import serve_app
from rae_common.testing_processes import silent_server
from rae_events.main import create_app

from .conftest import SECRET, Engine, fast_settings, memory

STOP_S = 0.5


async def test_a_webhook_call_that_never_answers_does_not_hold_the_shutdown(
    infra_env: dict[str, str], publisher: KafkaPublisher, db: asyncpg.Pool, tenant: str
) -> None:
    settings = fast_settings(infra_env, events_webhook_timeout_s=60.0, background_stop_timeout_s=STOP_S)
    with silent_server() as silent:
        async with serve_app(create_app(settings)) as client:
            engine = Engine(client, publisher, db, infra_env["KAFKA_BOOTSTRAP_SERVERS"])
            action = {"kind": "webhook", "url": silent.url, "secret": SECRET}
            await engine.create_rule(tenant, type="memory_count", params={"every": 1}, action=action)
            await engine.publish(memory(tenant))
            assert await asyncio.to_thread(silent.asked.wait, 30), "the webhook was never called"
            stopping = time.monotonic()
        took = time.monotonic() - stopping
    # The lifespan's whole shutdown (consumer, relay, the three workers, the pool) within the
    # background budget and the unwind, with room for a busy machine: not the 60 s webhook timeout.
    assert took < STOP_S + CANCEL_WAIT_S + 3.0, f"shutdown took {took:.1f} s with a webhook call in flight"
    # The call cancelled at the deadline is still to do (tried again once its lease is over), not
    # lost and not counted as delivered or dead.
    async with tenant_tx(db, tenant) as conn:
        statuses = await conn.fetch(
            "SELECT status FROM events.firings WHERE tenant_id = $1 AND action_kind = 'webhook'", tenant
        )
    assert [r["status"] for r in statuses] in (["pending"], ["failed"])
