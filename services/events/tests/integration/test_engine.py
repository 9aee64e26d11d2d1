"""Rules fire from events on the real broker: once per trigger, with cooldown, into the audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from rae_common.events import TOPIC_EVENTS, TOPIC_REFLECTION, AlertRaised, ReflectionRequested

from .conftest import budget, evaluation, eventually, memory


async def test_every_twentieth_memory_requests_a_reflection_once(engine, tenant: str) -> None:
    memories = [memory(tenant) for _ in range(40)]
    # Redeliveries and reflections (which never count) in the middle of the stream.
    stream = [
        *memories[:25],
        memories[3],
        memories[19],
        memory(tenant, "reflective"),
        *memories[25:],
        memories[39],
    ]
    await engine.consume(*stream)

    [rule] = (await engine.call("GET", "/v1/events/rules", tenant))["items"]
    commands = await engine.commands(TOPIC_REFLECTION, tenant, 2)
    assert len(commands) == 2
    first, second = sorted(commands, key=lambda c: c.data.trigger_key)
    for command, nth in ((first, 20), (second, 40)):
        assert isinstance(command.data, ReflectionRequested)
        assert command.data.trigger_key == command.idempotency_key == f"memory_count:{rule['id']}:{nth}"
        assert (command.producer, str(command.data.rule_id), command.data.memory_count) == (
            "events",
            rule["id"],
            20,
        )
    assert first.data.since is None
    assert second.data.since == memories[19].occurred_at

    firings = await engine.firings(tenant)
    assert sorted(f["trigger_key"] for f in firings) == [first.data.trigger_key, second.data.trigger_key]
    assert {f["id"] for f in firings} == {str(first.id), str(second.id)}
    for firing in firings:
        assert (firing["status"], firing["action_kind"], firing["attempts"]) == ("delivered", "event", 1)
        assert firing["event_type"] == "reflection.requested"
        assert firing["latency_ms"] >= 0
    assert {f["source_event_id"] for f in firings} == {str(memories[19].id), str(memories[39].id)}


async def test_cooldown_skips_triggers_and_audits_them(engine, tenant: str) -> None:
    rule = await engine.create_rule(
        tenant, type="memory_count", params={"every": 1}, cooldown_s=3600, action={"kind": "event"}
    )
    await engine.consume(*(memory(tenant) for _ in range(3)))
    firings = await engine.firings(tenant)
    assert sorted(f["status"] for f in firings) == ["delivered", "skipped", "skipped"]
    assert all(f["rule_id"] == rule["id"] for f in firings)
    assert len(await engine.commands(TOPIC_REFLECTION, tenant, 1, timeout_s=5)) == 1
    delivered = await engine.firings(tenant, status="delivered")
    assert [f["trigger_key"] for f in delivered] == [f"memory_count:{rule['id']}:1"]


async def test_a_low_evaluation_raises_one_alert(engine, tenant: str) -> None:
    rule = await engine.create_rule(
        tenant, type="eval_quality", params={"metric": "recall_at_k", "below": 0.5}
    )
    low = evaluation(tenant, recall=0.31)
    again = evaluation(tenant, recall=0.31, evaluation_id=low.data.evaluation_id)  # re-sent, new event id
    await engine.consume(low, evaluation(tenant, recall=0.5), again)

    [alert] = await engine.commands(TOPIC_EVENTS, tenant, 1)
    assert alert.type == "alert.raised"
    assert isinstance(alert.data, AlertRaised)
    assert (alert.data.severity, alert.data.source_event_id, str(alert.data.rule_id)) == (
        "warning",
        low.id,
        rule["id"],
    )
    assert "recall_at_k 0.310" in alert.data.title
    [firing] = await engine.firings(tenant)
    assert (firing["rule_type"], firing["source_type"], firing["id"]) == (
        "eval_quality",
        "eval.completed",
        str(alert.id),
    )


async def test_budget_levels_raise_alerts_once_per_announcement(engine, tenant: str) -> None:
    await engine.create_rule(tenant, type="budget", params={"levels": ["exceeded"]})
    exceeded = budget(tenant, "exceeded")
    await engine.consume(budget(tenant, "warning"), exceeded, budget(tenant, "exceeded"))

    [alert] = await engine.commands(TOPIC_EVENTS, tenant, 1)
    assert isinstance(alert.data, AlertRaised)
    assert (alert.data.severity, alert.data.source_event_id) == ("critical", exceeded.id)
    assert len(await engine.firings(tenant)) == 1


async def test_disabled_rules_do_not_fire(engine, tenant: str) -> None:
    await engine.create_rule(tenant, type="budget", enabled=False)
    await engine.consume(budget(tenant, "exceeded"))
    assert await engine.firings(tenant) == []


async def test_the_audit_is_filtered_and_paged_newest_first(engine, tenant: str) -> None:
    rule = await engine.create_rule(tenant, type="memory_count", params={"every": 1})
    other = await engine.create_rule(tenant, type="budget")
    before = datetime.now(UTC) - timedelta(seconds=1)
    await engine.consume(*(memory(tenant) for _ in range(5)))
    await engine.consume(budget(tenant, "warning"))

    everything = await engine.firings(tenant)
    assert len(everything) == 6
    assert everything[0]["rule_id"] == other["id"]  # the newest
    seen = [f["id"] for f in await engine.paged("/v1/events/triggers", tenant, 2)]
    assert seen == [f["id"] for f in everything]

    assert len(await engine.firings(tenant, rule_id=rule["id"])) == 5
    assert len(await engine.firings(tenant, rule_id=other["id"], status="delivered")) == 1
    assert await engine.firings(tenant, status="dead") == []
    assert len(await engine.firings(tenant, since=before.isoformat())) == 6
    assert await engine.firings(tenant, until=before.isoformat()) == []
    assert await engine.firings(f"{tenant}-x") == []


async def test_consumption_firings_lag_and_dlq_size_are_on_metrics(engine, tenant: str) -> None:
    await engine.create_rule(tenant, type="budget", params={"levels": ["warning"]})
    await engine.consume(budget(tenant, "warning"))

    async def scraped() -> dict | None:
        text = (await engine.client.get("/metrics")).text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        lag = [v for (name, _), v in samples.items() if name == "rae_events_consumer_lag"]
        # Sampled: wait for a sample of every partition taken once the stream was handled.
        return samples if len(lag) == 18 and sum(lag) == 0 else None

    samples = await eventually(scraped, what="a consumer lag of 0 on every partition")
    assert samples["rae_events_consumed_total", (("type", "budget.warning"),)] >= 1
    fired = ("rae_events_firings_total", (("action", "event"), ("outcome", "fired"), ("rule_type", "budget")))
    assert samples[fired] >= 1
    assert samples["rae_events_processing_seconds_count", (("type", "budget.warning"),)] >= 1
    assert samples["rae_events_firing_latency_seconds_count", (("action", "event"),)] >= 1
    assert ("rae_events_dlq_size", (("kind", "webhook"),)) in samples
    assert ("rae_events_dlq_size", (("kind", "consumer"),)) in samples
    assert ("rae_events_consumer_lag", (("partition", "0"), ("topic", "rae.memory.v1"))) in samples
