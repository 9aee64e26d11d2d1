"""Rules as the engine evaluates them: which events match, when a match fires, what it sends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import TypeAdapter

from rae_common.contracts.events import (
    BudgetParams,
    BudgetRuleIn,
    CommandType,
    EvalQualityParams,
    EvalQualityRuleIn,
    EventAction,
    MemoryCountParams,
    MemoryCountRuleIn,
    RuleIn,
    RuleType,
    WebhookAction,
)
from rae_common.contracts.memory import Layer
from rae_common.events import (
    AlertRaised,
    BudgetExceeded,
    BudgetWarning,
    Envelope,
    EvalCompleted,
    MemoryCreated,
    ReflectionRequested,
)

__all__ = [
    "PRODUCER",
    "RULE_TYPE_OF_EVENT",
    "Rule",
    "RuleSpec",
    "RuleState",
    "command",
    "default_rule",
    "in_cooldown",
    "matches",
    "parse_spec",
    "trigger_key",
]

PRODUCER = "events"
RuleSpec = MemoryCountRuleIn | EvalQualityRuleIn | BudgetRuleIn
# The event types rules react to; every other event is only logged.
RULE_TYPE_OF_EVENT: dict[str, RuleType] = {
    "memory.created": "memory_count",
    "eval.completed": "eval_quality",
    "budget.warning": "budget",
    "budget.exceeded": "budget",
}
# Reflections are stored as `reflective` memories: counting them would make reflections trigger
# reflections.
_COUNTED_BY_DEFAULT = frozenset(layer.value for layer in Layer if layer is not Layer.REFLECTIVE)
_SPEC: TypeAdapter[RuleSpec] = TypeAdapter(RuleIn)


def parse_spec(value: dict[str, Any]) -> RuleSpec:
    return _SPEC.validate_python(value)


def default_rule(every: int, cooldown_s: int) -> MemoryCountRuleIn:
    """What a tenant without rules gets: a reflection every `every` new memories."""
    return MemoryCountRuleIn(
        type="memory_count",
        name="default: reflect every N memories",
        params=MemoryCountParams(every=every),
        cooldown_s=cooldown_s,
    )


@dataclass(frozen=True, slots=True)
class Rule:
    id: uuid.UUID
    tenant_id: str
    spec: RuleSpec

    @property
    def event_type(self) -> CommandType:
        """The command a firing sends, as an event or as a webhook's body."""
        action = self.spec.action
        if isinstance(action, EventAction) and action.event_type is not None:
            return action.event_type
        return "reflection.requested" if self.spec.type == "memory_count" else "alert.raised"

    @property
    def action_kind(self) -> Literal["event", "webhook"]:
        return "webhook" if isinstance(self.spec.action, WebhookAction) else "event"


@dataclass(frozen=True, slots=True)
class RuleState:
    """A rule's state after counting the event at hand."""

    matched: int
    last_fired_at: datetime | None
    matched_at_fire: int


def matches(spec: RuleSpec, envelope: Envelope) -> bool:
    """Whether the event counts for a memory_count rule, or triggers another rule."""
    data = envelope.data
    params = spec.params
    if isinstance(params, MemoryCountParams):
        counted = _COUNTED_BY_DEFAULT if params.layers is None else {layer.value for layer in params.layers}
        return isinstance(data, MemoryCreated) and data.layer in counted
    if isinstance(params, EvalQualityParams):
        return isinstance(data, EvalCompleted) and float(getattr(data, params.metric)) < params.below
    if isinstance(params, BudgetParams):
        level = envelope.type.removeprefix("budget.")
        return isinstance(data, BudgetWarning | BudgetExceeded) and level in params.levels
    return False


def trigger_key(rule: Rule, envelope: Envelope, state: RuleState) -> str | None:
    """The firing's deterministic key, or None when this match does not fire.

    A memory_count rule fires at every N-th counted memory; its key names the count, which never
    repeats, even when N is changed. The others fire on each matching event: an evaluation once,
    a budget level once per announcement (the cost service's idempotency key names it)."""
    params = rule.spec.params
    if isinstance(params, MemoryCountParams):
        if state.matched % params.every:
            return None
        return f"memory_count:{rule.id}:{state.matched}"
    if isinstance(params, EvalQualityParams):
        assert isinstance(envelope.data, EvalCompleted)
        return f"eval_quality:{rule.id}:{envelope.data.evaluation_id}"
    return f"budget:{rule.id}:{envelope.idempotency_key}"


def in_cooldown(cooldown_s: int, last_fired_at: datetime | None, occurred_at: datetime) -> bool:
    """Measured between source events' times, not handling times, so a backlog handled late (after
    an outage) fires as it would have on time, and handling an event again decides the same."""
    if not cooldown_s or last_fired_at is None:
        return False
    return occurred_at < last_fired_at + timedelta(seconds=cooldown_s)


def command(rule: Rule, envelope: Envelope, state: RuleState, firing_id: uuid.UUID, key: str) -> Envelope:
    """The envelope a firing publishes (event action) or POSTs (webhook action)."""
    spec = rule.spec
    if rule.event_type == "reflection.requested":
        assert isinstance(spec.params, MemoryCountParams)
        counted = state.matched - state.matched_at_fire
        data: ReflectionRequested | AlertRaised = ReflectionRequested(
            rule_id=rule.id,
            reason=f"{counted} new memories (rule {spec.name!r}: every {spec.params.every})",
            since=state.last_fired_at,
            memory_count=counted,
            trigger_key=key,
        )
    else:
        severity, title, detail = _alert_text(spec, envelope, state)
        data = AlertRaised(
            rule_id=rule.id,
            severity=severity,
            title=title,
            detail=detail,
            source_event_id=envelope.id,
            source_type=envelope.type,
        )
    return Envelope(
        id=firing_id,
        type=rule.event_type,
        tenant_id=rule.tenant_id,
        producer=PRODUCER,
        idempotency_key=key,
        data=data,
    )


def _alert_text(
    spec: RuleSpec, envelope: Envelope, state: RuleState
) -> tuple[Literal["info", "warning", "critical"], str, str]:
    data = envelope.data
    params = spec.params
    if isinstance(data, EvalCompleted) and isinstance(params, EvalQualityParams):
        value = float(getattr(data, params.metric))
        return (
            "warning",
            f"Evaluation {params.metric} {value:.3f} is below {params.below}",
            f"Evaluation {data.evaluation_id} ({data.cases} cases, k={data.k}): recall@k "
            f"{data.recall_at_k:.3f}, MRR {data.mrr:.3f}, nDCG@k {data.ndcg_at_k:.3f}.",
        )
    if isinstance(data, BudgetWarning | BudgetExceeded):
        level = envelope.type.removeprefix("budget.")
        return (
            "critical" if level == "exceeded" else "warning",
            f"Budget {level}: {data.metric} per {data.period}",
            f"{data.used:g} of {data.limit:g} {data.metric} used ({data.ratio:.0%}) in the {data.period} "
            f"from {data.period_start}.",
        )
    return (
        "info",
        f"{state.matched - state.matched_at_fire} new memories",
        f"Rule {spec.name!r} counted {state.matched} memories in all.",
    )
