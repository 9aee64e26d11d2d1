"""Webhook actions against real local receivers: signed, retried with backoff, dead-lettered,
replayed; and the dead letters of other consumers, listed and replayed."""

from __future__ import annotations

import json
import uuid

from rae_common.events import TOPIC_DLQ, Envelope, registry
from rae_common.messaging import KafkaConsumerLoop, KafkaPublisher
from rae_common.testing import new_topic, read_topic
from rae_events.domain.webhooks import verify

from .conftest import SECRET, budget, eventually, memory, records_of


def webhook(receiver, **rule) -> dict:
    return {"action": {"kind": "webhook", "url": receiver.url, "secret": SECRET}, **rule}


async def test_a_webhook_that_fails_twice_then_succeeds_fires_once(engine, tenant: str, receiver) -> None:
    receiver.fail_next = 2
    rule = await engine.create_rule(tenant, type="memory_count", params={"every": 1}, **webhook(receiver))
    source = memory(tenant)
    await engine.publish(source, source)

    firing = await engine.firing(tenant, "delivered")
    assert (firing["attempts"], firing["action_kind"], firing["rule_id"]) == (3, "webhook", rule["id"])
    assert firing["last_error"] == "HTTP 500 from the receiver"
    assert firing["latency_ms"] > 0 and firing["finished_at"] is not None
    assert [r.status for r in receiver.received] == [500, 500, 200]
    for request in receiver.received:
        assert request.headers["x-rae-delivery"] == firing["id"]
        assert request.headers["x-rae-event"] == "reflection.requested"
        assert request.headers["content-type"] == "application/json"
        assert verify(
            SECRET, request.headers["x-rae-timestamp"], request.body, request.headers["x-rae-signature"]
        )
    body = registry.parse(receiver.received[-1].body)
    assert (body.id, body.type, body.tenant_id) == (uuid.UUID(firing["id"]), "reflection.requested", tenant)
    assert body.data.trigger_key == f"memory_count:{rule['id']}:1"
    await engine.handled(source)
    assert len(await engine.firings(tenant)) == 1


async def test_a_webhook_that_always_fails_is_dead_lettered_and_replayed_once_it_recovers(
    engine, tenant: str, receiver
) -> None:
    receiver.fail_always = True
    await engine.create_rule(tenant, type="budget", max_attempts=3, **webhook(receiver))
    await engine.publish(budget(tenant, "exceeded"))

    dead = await engine.firing(tenant, "dead")
    assert (dead["attempts"], dead["last_error"]) == (3, "HTTP 500 from the receiver")
    assert len(receiver.received) == 3
    [entry] = await engine.dead_letters(tenant)
    assert (entry["id"], entry["kind"], entry["attempts"], entry["url"]) == (
        dead["id"],
        "webhook",
        3,
        receiver.url,
    )
    assert (entry["event_type"], entry["rule_id"]) == ("alert.raised", dead["rule_id"])
    [record] = await records_of(engine.bootstrap, TOPIC_DLQ, tenant, 1)
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["rae-dlq-firing-id"] == dead["id"]
    assert headers["rae-dlq-error"] == "HTTP 500 from the receiver"
    assert headers["rae-dlq-attempts"] == "3"
    assert registry.parse(record.value).id == uuid.UUID(dead["id"])

    receiver.fail_always = False
    replayed = await engine.call("POST", f"/v1/events/dlq/{dead['id']}/replay", tenant, 202)
    assert (replayed["id"], replayed["kind"]) == (dead["id"], "webhook")
    delivered = await engine.firing(tenant, "delivered")
    assert (delivered["id"], delivered["attempts"]) == (dead["id"], 1)
    assert len(receiver.delivered()) == 1
    assert receiver.delivered()[0].headers["x-rae-delivery"] == dead["id"]
    assert await engine.dead_letters(tenant) == []

    again = await engine.call("POST", f"/v1/events/dlq/{dead['id']}/replay", tenant, 409)
    assert again["type"].endswith("/not-dead")
    await engine.call("POST", f"/v1/events/dlq/{uuid.uuid4()}/replay", tenant, 404)
    await engine.call("POST", f"/v1/events/dlq/{dead['id']}/replay", f"{tenant}-x", 404)


async def test_an_unreachable_receiver_is_retried_then_dead(engine, tenant: str, receiver) -> None:
    url = receiver.url
    receiver.stop()
    await engine.create_rule(
        tenant, type="budget", max_attempts=2, action={"kind": "webhook", "url": url, "secret": SECRET}
    )
    await engine.publish(budget(tenant, "warning"))
    dead = await engine.firing(tenant, "dead")
    assert dead["attempts"] == 2
    assert "Connect" in dead["last_error"]


async def test_dead_letters_of_other_consumers_are_listed_and_replayed(
    engine, tenant: str, infra_env
) -> None:
    bootstrap = infra_env["KAFKA_BOOTSTRAP_SERVERS"]
    source_topic = await new_topic(bootstrap)
    failing = KafkaPublisher(bootstrap, client_id="failing-consumer-dlq")
    group = f"failing-{uuid.uuid4().hex[:6]}"

    async def refuse(envelope: Envelope, meta) -> None:
        raise RuntimeError(f"cannot handle {envelope.type}")

    loop = KafkaConsumerLoop(
        bootstrap,
        group_id=group,
        topics=[source_topic],
        handler=refuse,
        dlq=failing,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        max_attempts=2,
        retry_backoff_s=0.01,
    )
    poisoned = memory(tenant)
    loop.start()
    try:
        await engine.publisher.publish(poisoned, topic=source_topic)

        async def listed() -> list[dict] | None:
            return await engine.dead_letters(tenant, kind="consumer") or None

        [entry] = await eventually(listed, what="the dead letter listed")
    finally:
        await loop.stop()
        await failing.stop()
    assert entry["kind"] == "consumer"
    assert (entry["event_id"], entry["event_type"]) == (str(poisoned.id), "memory.created")
    assert (entry["source_topic"], entry["source_offset"], entry["consumer_group"]) == (
        source_topic,
        0,
        group,
    )
    assert entry["source_partition"] in range(3)
    assert (entry["attempts"], entry["error"]) == (2, "RuntimeError: cannot handle memory.created")
    assert await engine.dead_letters(tenant, kind="webhook") == []

    replayed = await engine.call("POST", f"/v1/events/dlq/{entry['id']}/replay", tenant, 202)
    assert replayed["kind"] == "consumer"
    records = await read_topic(bootstrap, source_topic, expected=2)
    assert [json.loads(r.value)["id"] for r in records] == [str(poisoned.id)] * 2
    assert not any(k.startswith("rae-dlq-") for k, _ in records[-1].headers)
    assert await engine.dead_letters(tenant) == []
    again = await engine.call("POST", f"/v1/events/dlq/{entry['id']}/replay", tenant, 409)
    assert again["type"].endswith("/already-replayed")
