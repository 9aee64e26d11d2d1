"""The event engine API contract (events service routes, exposed by the gateway): the event log,
rules, the firing audit and the dead-letter queue."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from rae_common.contracts.common import TimeWindow, UtcDatetime
from rae_common.contracts.memory import Layer

__all__ = [
    "MAX_COOLDOWN_S",
    "Action",
    "ActionOut",
    "BudgetLevel",
    "BudgetParams",
    "BudgetRuleIn",
    "CommandType",
    "DeadLetter",
    "DeadLetterPage",
    "DeadLetterQuery",
    "EvalMetric",
    "EvalQualityParams",
    "EvalQualityRuleIn",
    "EventAction",
    "EventActionOut",
    "EventPage",
    "Firing",
    "FiringPage",
    "FiringQuery",
    "FiringStatus",
    "LoggedEvent",
    "MemoryCountParams",
    "MemoryCountRuleIn",
    "Replay",
    "RuleIn",
    "RuleOut",
    "RulePage",
    "RuleQuery",
    "RuleType",
    "WebhookAction",
    "WebhookActionOut",
]

MAX_COOLDOWN_S = 30 * 24 * 3600
MAX_ATTEMPTS = 50

RuleType = Literal["memory_count", "eval_quality", "budget"]
EvalMetric = Literal["recall_at_k", "mrr", "ndcg_at_k"]
BudgetLevel = Literal["warning", "exceeded"]
CommandType = Literal["reflection.requested", "alert.raised"]
FiringStatus = Literal["pending", "failed", "delivered", "dead", "skipped"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the event log ------------------------------------------------------------------------------


class LoggedEvent(BaseModel):
    event_id: uuid.UUID
    tenant_id: str
    type: str
    version: int
    producer: str
    topic: str
    partition: int
    offset: int
    trace_id: str | None
    occurred_at: datetime
    received_at: datetime


class EventPage(BaseModel):
    items: list[LoggedEvent]
    next_cursor: str | None


# --- rules --------------------------------------------------------------------------------------


class MemoryCountParams(_Strict):
    every: int = Field(default=20, ge=1, le=1_000_000, description="Fire at every N-th counted memory.")
    layers: list[Layer] | None = Field(
        default=None,
        min_length=1,
        description="Layers whose new memories count; null: every layer but `reflective` (reflections "
        "must not trigger reflections).",
    )


class EvalQualityParams(_Strict):
    metric: EvalMetric
    below: float = Field(ge=0, le=1, description="Fire when the evaluation's metric is under this value.")


def _both_levels() -> list[BudgetLevel]:
    return ["warning", "exceeded"]


class BudgetParams(_Strict):
    levels: list[BudgetLevel] = Field(
        default_factory=_both_levels,
        min_length=1,
        max_length=2,
        description="Budget events that fire: `budget.warning`, `budget.exceeded` or both.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if len(set(self.levels)) != len(self.levels):
            raise ValueError("levels must not repeat")
        return self


class EventAction(_Strict):
    """Publish a command event (through the transactional outbox: exactly once per firing)."""

    kind: Literal["event"]
    event_type: CommandType | None = Field(
        default=None,
        description="null: `reflection.requested` for memory_count rules, `alert.raised` otherwise.",
    )


class WebhookAction(_Strict):
    """POST the command event's envelope to `url`, signed with HMAC-SHA256 of `secret`."""

    kind: Literal["webhook"]
    url: AnyHttpUrl = Field(description="http or https.")
    secret: str = Field(min_length=16, max_length=256, description="Write-only: never answered.")

    @model_validator(mode="after")
    def _url(self) -> Self:
        if len(str(self.url)) > 2000:
            raise ValueError("url must be at most 2000 characters")
        return self


Action = Annotated[EventAction | WebhookAction, Field(discriminator="kind")]


class _RuleFields(_Strict):
    name: str = Field(min_length=1, max_length=200)
    action: Action = Field(
        default_factory=lambda: EventAction(kind="event"), description="Default: publish the command event."
    )
    cooldown_s: int = Field(
        default=0,
        ge=0,
        le=MAX_COOLDOWN_S,
        description="After a firing, triggers whose source event occurred less than this many seconds "
        "after the firing's source event are skipped (and audited as `skipped`).",
    )
    max_attempts: int = Field(default=5, ge=1, le=MAX_ATTEMPTS, description="Webhook tries before the DLQ.")
    enabled: bool = True


class MemoryCountRuleIn(_RuleFields):
    type: Literal["memory_count"]
    params: MemoryCountParams = Field(default_factory=MemoryCountParams)


class _AlertingRuleIn(_RuleFields):
    @model_validator(mode="after")
    def _alerts_only(self) -> Self:
        # A reflection needs a count of new memories, which only memory_count rules have.
        if isinstance(self.action, EventAction) and self.action.event_type not in (None, "alert.raised"):
            raise ValueError("only memory_count rules publish reflection.requested")
        return self


class EvalQualityRuleIn(_AlertingRuleIn):
    type: Literal["eval_quality"]
    params: EvalQualityParams


class BudgetRuleIn(_AlertingRuleIn):
    type: Literal["budget"]
    params: BudgetParams = Field(default_factory=BudgetParams)


RuleIn = Annotated[MemoryCountRuleIn | EvalQualityRuleIn | BudgetRuleIn, Field(discriminator="type")]


class EventActionOut(BaseModel):
    kind: Literal["event"]
    event_type: CommandType


class WebhookActionOut(BaseModel):
    kind: Literal["webhook"]
    url: str
    event_type: CommandType = Field(description="Type of the envelope POSTed.")


ActionOut = Annotated[EventActionOut | WebhookActionOut, Field(discriminator="kind")]


class RuleOut(BaseModel):
    id: uuid.UUID
    tenant_id: str
    name: str
    type: RuleType
    params: MemoryCountParams | EvalQualityParams | BudgetParams
    action: ActionOut
    cooldown_s: int
    max_attempts: int
    enabled: bool
    created_at: datetime
    updated_at: datetime


class RulePage(BaseModel):
    items: list[RuleOut]
    next_cursor: str | None


class RuleQuery(_Strict):
    """Filters of `GET /v1/events/rules` (oldest first)."""

    type: RuleType | None = None
    enabled: bool | None = None
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=100, ge=1, le=500)


# --- the firing audit ---------------------------------------------------------------------------


class Firing(BaseModel):
    """One firing of a rule: its source event, what it did and how delivery went."""

    id: uuid.UUID = Field(description="Also the id of the command envelope and the webhook delivery id.")
    rule_id: uuid.UUID
    rule_name: str
    rule_type: RuleType
    trigger_key: str
    source_event_id: uuid.UUID
    source_type: str
    action_kind: Literal["event", "webhook"]
    event_type: CommandType
    status: FiringStatus
    attempts: int
    max_attempts: int
    last_error: str | None
    latency_ms: float | None = Field(description="From the source event's occurred_at to delivery.")
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None


class FiringPage(BaseModel):
    items: list[Firing]
    next_cursor: str | None


class FiringQuery(_Strict, TimeWindow):
    """Filters of `GET /v1/events/triggers` (newest first)."""

    rule_id: uuid.UUID | None = None
    status: FiringStatus | None = None
    since: UtcDatetime | None = Field(default=None, description="created_at at or after.")
    until: UtcDatetime | None = Field(default=None, description="created_at before.")
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=500)


# --- the dead-letter queue ----------------------------------------------------------------------


class DeadLetter(BaseModel):
    """A webhook delivery that used up its attempts, or a record a consumer gave up on."""

    id: uuid.UUID
    kind: Literal["webhook", "consumer"]
    error: str
    attempts: int
    dead_at: datetime
    event_id: uuid.UUID | None = Field(description="The command event (webhook) or the failed event.")
    event_type: str | None
    rule_id: uuid.UUID | None = Field(description="webhook only")
    url: str | None = Field(description="webhook only")
    source_topic: str | None = Field(description="consumer only: where the record came from")
    source_partition: int | None
    source_offset: int | None
    consumer_group: str | None


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None


class DeadLetterQuery(_Strict):
    kind: Literal["webhook", "consumer"] | None = None
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=500)


class Replay(BaseModel):
    id: uuid.UUID
    kind: Literal["webhook", "consumer"]
    replayed_at: datetime
    detail: str
