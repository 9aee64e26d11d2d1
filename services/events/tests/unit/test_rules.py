"""Rule evaluation: what matches, when a match fires, the keys and the commands it sends."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from rae_common.contracts.events import RuleIn
from rae_common.events import (
    AlertRaised,
    BudgetExceeded,
    BudgetWarning,
    Envelope,
    EvalCompleted,
    MemoryCreated,
    ReflectionRequested,
    new_envelope,
    registry,
    topic_for,
)
from rae_events.domain.rules import (
    Rule,
    RuleState,
    command,
    default_rule,
    in_cooldown,
    matches,
    parse_spec,
    trigger_key,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def rule(**spec: object) -> Rule:
    return Rule(id=uuid.uuid4(), tenant_id="acme", spec=parse_spec({"name": "r", **spec}))


def memory(layer: str = "episodic") -> Envelope:
    data = MemoryCreated(memory_id=uuid.uuid4(), layer=layer, content_hash="h")
    return new_envelope("memory.created", data, tenant_id="acme", producer="memory")


def evaluation(recall: float = 0.4, mrr: float = 0.9) -> Envelope:
    data = EvalCompleted(
        evaluation_id=uuid.uuid4(), k=10, recall_at_k=recall, mrr=mrr, ndcg_at_k=0.5, cases=40
    )
    return new_envelope("eval.completed", data, tenant_id="acme", producer="memory")


def budget(level: str) -> Envelope:
    model = BudgetWarning if level == "warning" else BudgetExceeded
    data = model(period="day", period_start=date(2026, 5, 1), metric="usd", limit=10, used=9, ratio=0.9)
    key = f"budget.{level}:acme:day:2026-05-01:usd"
    return new_envelope(f"budget.{level}", data, tenant_id="acme", producer="cost", idempotency_key=key)


def test_memory_count_counts_every_layer_but_reflective_unless_told() -> None:
    default = rule(type="memory_count")
    assert matches(default.spec, memory("episodic"))
    assert not matches(default.spec, memory("reflective"))
    assert not matches(default.spec, evaluation())
    chosen = rule(type="memory_count", params={"layers": ["reflective", "semantic"]})
    assert matches(chosen.spec, memory("reflective"))
    assert not matches(chosen.spec, memory("episodic"))


def test_memory_count_fires_at_every_nth_match_with_a_key_naming_the_count() -> None:
    r = rule(type="memory_count", params={"every": 3})
    event = memory()
    keys = [trigger_key(r, event, RuleState(n, None, 0)) for n in range(1, 8)]
    assert keys == [None, None, f"memory_count:{r.id}:3", None, None, f"memory_count:{r.id}:6", None]


def test_eval_quality_fires_below_the_threshold_once_per_evaluation() -> None:
    r = rule(type="eval_quality", params={"metric": "recall_at_k", "below": 0.5})
    low, high = evaluation(recall=0.4), evaluation(recall=0.5)
    assert matches(r.spec, low) and not matches(r.spec, high)
    assert isinstance(low.data, EvalCompleted)
    assert trigger_key(r, low, RuleState(1, None, 0)) == f"eval_quality:{r.id}:{low.data.evaluation_id}"
    by_mrr = rule(type="eval_quality", params={"metric": "mrr", "below": 0.95})
    assert matches(by_mrr.spec, low)


def test_budget_rule_fires_on_its_levels_keyed_by_the_announcement() -> None:
    r = rule(type="budget", params={"levels": ["exceeded"]})
    assert not matches(r.spec, budget("warning"))
    exceeded = budget("exceeded")
    assert matches(r.spec, exceeded)
    resent = budget("exceeded")
    assert resent.id != exceeded.id
    assert trigger_key(r, exceeded, RuleState(1, None, 0)) == trigger_key(r, resent, RuleState(2, None, 0))
    assert matches(rule(type="budget").spec, budget("warning"))


def test_cooldown_is_measured_between_source_events() -> None:
    assert not in_cooldown(0, T0, T0)
    assert not in_cooldown(60, None, T0)
    assert in_cooldown(60, T0, T0 + timedelta(seconds=59))
    assert not in_cooldown(60, T0, T0 + timedelta(seconds=60))
    assert in_cooldown(60, T0, T0 - timedelta(seconds=5))  # an older event, handled late


def test_reflection_request_names_the_memories_since_the_last_firing() -> None:
    r = rule(type="memory_count", params={"every": 20})
    firing_id = uuid.uuid4()
    made = command(r, memory(), RuleState(40, T0, 20), firing_id, "k")
    assert (made.id, made.type, made.tenant_id, made.producer, made.idempotency_key) == (
        firing_id,
        "reflection.requested",
        "acme",
        "events",
        "k",
    )
    assert isinstance(made.data, ReflectionRequested)
    assert (made.data.rule_id, made.data.since, made.data.memory_count) == (r.id, T0, 20)
    assert topic_for(made.type) == "rae.reflection.v1"
    assert registry.parse(made.to_json()) == made


@pytest.mark.parametrize(
    ("source", "spec", "severity"),
    [
        (
            evaluation(recall=0.2),
            {"type": "eval_quality", "params": {"metric": "recall_at_k", "below": 0.5}},
            "warning",
        ),
        (budget("exceeded"), {"type": "budget"}, "critical"),
        (budget("warning"), {"type": "budget"}, "warning"),
    ],
)
def test_alerts_carry_a_severity_and_their_source(source: Envelope, spec: dict, severity: str) -> None:
    made = command(rule(**spec), source, RuleState(1, None, 0), uuid.uuid4(), "k")
    assert made.type == "alert.raised"
    assert isinstance(made.data, AlertRaised)
    assert (made.data.severity, made.data.source_event_id, made.data.source_type) == (
        severity,
        source.id,
        source.type,
    )
    assert made.data.title and made.data.detail
    assert topic_for(made.type) == "rae.events.v1"


def test_a_memory_count_rule_may_alert_instead() -> None:
    r = rule(type="memory_count", action={"kind": "event", "event_type": "alert.raised"})
    made = command(r, memory(), RuleState(20, None, 0), uuid.uuid4(), "k")
    assert isinstance(made.data, AlertRaised) and made.data.severity == "info"


def test_webhook_rules_send_the_command_of_their_type() -> None:
    action = {"kind": "webhook", "url": "https://hooks.example/x", "secret": "s" * 16}
    assert rule(type="memory_count", action=action).event_type == "reflection.requested"
    assert rule(type="budget", action=action).event_type == "alert.raised"
    assert rule(type="budget", action=action).action_kind == "webhook"


def test_the_default_rule_reflects_every_n_memories() -> None:
    spec = default_rule(20, 0)
    assert (spec.type, spec.params.every, spec.action.kind, spec.enabled) == (
        "memory_count",
        20,
        "event",
        True,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"type": "nope", "name": "x"},
        {"type": "memory_count", "name": ""},
        {"type": "memory_count", "name": "x", "params": {"every": 0}},
        {"type": "memory_count", "name": "x", "params": {"layers": []}},
        {"type": "memory_count", "name": "x", "params": {"layers": ["cosmic"]}},
        {"type": "memory_count", "name": "x", "params": {"every": 5, "extra": 1}},
        {"type": "eval_quality", "name": "x"},
        {"type": "eval_quality", "name": "x", "params": {"metric": "recall_at_k", "below": 1.5}},
        {"type": "eval_quality", "name": "x", "params": {"metric": "f1", "below": 0.5}},
        {"type": "budget", "name": "x", "params": {"levels": []}},
        {"type": "budget", "name": "x", "params": {"levels": ["warning", "warning"]}},
        {"type": "budget", "name": "x", "action": {"kind": "event", "event_type": "reflection.requested"}},
        {"type": "budget", "name": "x", "action": {"kind": "email"}},
        {
            "type": "budget",
            "name": "x",
            "action": {"kind": "webhook", "url": "ftp://h/x", "secret": "s" * 16},
        },
        {
            "type": "budget",
            "name": "x",
            "action": {"kind": "webhook", "url": "not a url", "secret": "s" * 16},
        },
        {
            "type": "budget",
            "name": "x",
            "action": {"kind": "webhook", "url": "https://h/x", "secret": "short"},
        },
        {"type": "budget", "name": "x", "cooldown_s": -1},
        {"type": "budget", "name": "x", "max_attempts": 0},
    ],
)
def test_invalid_rules_are_refused(body: dict) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(RuleIn).validate_python(body)
