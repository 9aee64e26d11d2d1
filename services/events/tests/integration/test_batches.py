"""What a poll brings is handled in one transaction, and fires exactly what the same events
handled one at a time fire: thresholds inside and across batches, cooldowns, redeliveries."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry import context as otel_context
from prometheus_client.parser import text_string_to_metric_families

from rae_common.events import Envelope, topic_for
from rae_common.messaging import ConsumedEvent, ConsumedRecord, OutgoingRecord
from rae_events.engine import EventEngine

from .conftest import eventually, memory


def consumed(envelope: Envelope, offset: int) -> ConsumedEvent:
    meta = ConsumedRecord(topic_for(envelope.type), 0, offset, envelope.tenant_id, {})
    return ConsumedEvent(envelope, meta, otel_context.get_current())


def stream(tenant: str) -> list[Envelope]:
    """30 memories with a redelivery in a later batch, one right after its original (the same
    batch) and a reflective memory (never counted)."""
    memories = [memory(tenant) for _ in range(30)]
    return [
        *memories[:10],
        memories[3],
        memory(tenant, "reflective"),
        *memories[10:20],
        memories[19],
        *memories[20:],
    ]


async def test_a_batch_fires_what_one_at_a_time_fires(engine, app: FastAPI, tenant: str) -> None:
    batched, single = tenant, f"{tenant}-single"
    for who in (batched, single):
        await engine.create_rule(who, name="every-7", type="memory_count", params={"every": 7})
        await engine.create_rule(
            who, name="every-3-cooled", type="memory_count", params={"every": 3}, cooldown_s=3600
        )
    events_b, events_s = stream(batched), stream(single)
    engine_under_test: EventEngine = app.state.rae.resources["engine"]  # called directly, no broker

    answers_b: list[bool] = []
    for start in range(0, len(events_b), 8):  # thresholds fall inside batches and across them
        chunk = events_b[start : start + 8]
        answers_b += await engine_under_test.handle_batch(
            [consumed(e, start + i) for i, e in enumerate(chunk)]
        )
    answers_s = [await engine_under_test.handle(e, consumed(e, i).meta) for i, e in enumerate(events_s)]

    assert answers_b == answers_s
    assert answers_b.count(False) == 2  # the two redeliveries

    async def fired(who: str, events: list[Envelope]) -> list[tuple[str, int, str, int]]:
        rules = {r["id"]: r["name"] for r in (await engine.call("GET", "/v1/events/rules", who))["items"]}
        index = {str(e.id): n for n, e in reversed(list(enumerate(events)))}
        return sorted(
            (
                rules[f["rule_id"]],
                int(f["trigger_key"].rsplit(":", 1)[1]),
                f["status"],
                index[f["source_event_id"]],
            )
            for f in await engine.firings(who)
        )

    firings = await fired(batched, events_b)
    assert firings == await fired(single, events_s)
    # every-7 fires at the 7th, 14th, 21st and 28th memory; every-3 fires at the 3rd and is then
    # cooled down (the memories occurred within an hour) for its 6th, 9th, ... 30th.
    assert [(n, status) for name, n, status, _ in firings if name == "every-7"] == [
        (7, "delivered"),
        (14, "delivered"),
        (21, "delivered"),
        (28, "delivered"),
    ]
    cooled = [(n, status) for name, n, status, _ in firings if name == "every-3-cooled"]
    assert cooled == [(3, "delivered"), *((n, "skipped") for n in range(6, 31, 3))]
    # The log has every new event once, with the record it came from.
    log = await engine.call("GET", "/v1/events/log", batched, params={"limit": 500})
    first_offsets = {str(e.id): n for n, e in reversed(list(enumerate(events_b)))}
    assert sorted((i["event_id"], i["offset"]) for i in log["items"]) == sorted(first_offsets.items())


async def test_a_burst_is_handled_in_batches_and_the_log_pages_through_all_of_it(engine, tenant: str) -> None:
    burst = [memory(tenant) for _ in range(30)]
    await engine.publisher.send_records(
        [OutgoingRecord(topic_for(e.type), e.to_json(), e.tenant_id) for e in burst]
    )
    await engine.handled(*burst)

    async def batch_sizes() -> tuple[float, float] | None:
        text = (await engine.client.get("/metrics")).text
        samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        return samples["rae_events_batch_events_sum"], samples["rae_events_batch_events_count"]

    total, batches = await eventually(batch_sizes, what="the batch metric")
    assert total > batches  # some transaction handled more than one event

    # The events of one transaction share their received_at; the cursor still finds each once.
    # (The default rule's reflection.requested, consumed too, is left out by the type.)
    logged = await engine.paged("/v1/events/log", tenant, 4, type="memory.created")
    seen = [item["event_id"] for item in logged]
    assert sorted(seen) == sorted(str(e.id) for e in burst)
    bad = await engine.client.get(
        "/v1/events/log", params={"cursor": "nonsense"}, headers={"X-Tenant-ID": tenant}
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
