"""The event envelope and the registry of typed, versioned event payloads."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "ALL_TOPICS",
    "TOPIC_COST",
    "TOPIC_DLQ",
    "TOPIC_ML",
    "AlertRaised",
    "BudgetExceeded",
    "BudgetWarning",
    "EvalCompleted",
    "LlmUsage",
    "Envelope",
    "EventData",
    "EventRegistry",
    "MemoryCreated",
    "MemoryDeleted",
    "MemoryUpdated",
    "ReflectionRequested",
    "UnknownEvent",
    "new_envelope",
    "registry",
    "topic_for",
]

TOPIC_MEMORY = "rae.memory.v1"
TOPIC_GRAPH = "rae.graph.v1"
TOPIC_ML = "rae.ml.v1"
TOPIC_COST = "rae.cost.v1"
TOPIC_REFLECTION = "rae.reflection.v1"
TOPIC_EVENTS = "rae.events.v1"
TOPIC_DLQ = "rae.dlq.v1"
ALL_TOPICS = (TOPIC_MEMORY, TOPIC_GRAPH, TOPIC_ML, TOPIC_COST, TOPIC_REFLECTION, TOPIC_EVENTS)


# Event domains whose topic is named after the service that owns them rather than the domain.
_TOPIC_OF_DOMAIN = {"llm": TOPIC_ML, "budget": TOPIC_COST, "alert": TOPIC_EVENTS, "eval": TOPIC_MEMORY}


def topic_for(event_type: str) -> str:
    """`memory.created` travels on `rae.memory.v1`: the domain is the type's first part
    (`llm.usage` on `rae.ml.v1` and `budget.*` on `rae.cost.v1`: their owners' topics)."""
    domain = event_type.split(".", 1)[0]
    topic = _TOPIC_OF_DOMAIN.get(domain, f"rae.{domain}.v1")
    if topic not in ALL_TOPICS:
        raise ValueError(f"no topic for event type {event_type!r}")
    return topic


class EventData(BaseModel):
    """Base of every payload: frozen, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class UnknownEvent(EventData):
    """Payload of a type (or version) this consumer does not know; kept as raw fields."""

    model_config = ConfigDict(frozen=True, extra="allow")


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str = Field(min_length=1, max_length=100)
    version: int = Field(default=1, ge=1)
    tenant_id: str = Field(min_length=1, max_length=64)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str = Field(min_length=1, max_length=64)
    idempotency_key: str = Field(min_length=1, max_length=200)
    data: EventData

    def to_json(self) -> bytes:
        return self.model_dump_json(serialize_as_any=True).encode()


D = TypeVar("D", bound=type[EventData])


class EventRegistry:
    """Maps (type, version) to its payload model, so consumers get typed data back."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[EventData]] = {}

    def register(self, event_type: str, version: int = 1) -> Callable[[D], D]:
        def decorate(model: D) -> D:
            key = (event_type, version)
            if key in self._models and self._models[key] is not model:
                raise ValueError(f"event {event_type} v{version} is already registered")
            self._models[key] = model
            return model

        return decorate

    def model_for(self, event_type: str, version: int) -> type[EventData] | None:
        return self._models.get((event_type, version))

    def known(self) -> list[tuple[str, int]]:
        return sorted(self._models)

    def parse(self, raw: bytes | str | dict[str, Any]) -> Envelope:
        """Parse a record value; raises `ValueError` on a malformed envelope or payload."""
        try:
            if isinstance(raw, dict):
                loose = _LooseEnvelope.model_validate(raw)
            else:
                loose = _LooseEnvelope.model_validate_json(raw)
            model = self.model_for(loose.type, loose.version) or UnknownEvent
            data = model.model_validate(loose.data)
            return Envelope.model_validate({**loose.model_dump(exclude={"data"}), "data": data})
        except ValidationError as exc:
            raise ValueError(f"malformed event: {exc.error_count()} error(s): {exc}") from exc


class _LooseEnvelope(Envelope):
    data: dict[str, Any]  # type: ignore[assignment]


registry = EventRegistry()


def new_envelope(
    event_type: str,
    data: EventData,
    *,
    tenant_id: str,
    producer: str,
    idempotency_key: str | None = None,
    version: int = 1,
) -> Envelope:
    event_id = uuid.uuid4()
    return Envelope(
        id=event_id,
        type=event_type,
        version=version,
        tenant_id=tenant_id,
        producer=producer,
        idempotency_key=idempotency_key or str(event_id),
        data=data,
    )


@registry.register("memory.created", 1)
class MemoryCreated(EventData):
    memory_id: uuid.UUID
    layer: str
    content_hash: str
    tags: list[str] = Field(default_factory=list)
    subject: str | None = None
    document_id: uuid.UUID | None = None


@registry.register("memory.updated", 1)
class MemoryUpdated(EventData):
    memory_id: uuid.UUID
    layer: str
    content_hash: str
    changed: list[str]


@registry.register("memory.deleted", 1)
class MemoryDeleted(EventData):
    memory_id: uuid.UUID
    layer: str
    reason: str = Field(description="deleted | erased | expired")
    subject: str | None = None


@registry.register("llm.usage", 1)
class LlmUsage(EventData):
    """One model call's tokens and cost, or the sums of `calls` calls rolled up by ml (embedding
    calls, per tenant and model and window); the envelope's idempotency key is the request id."""

    request_id: str
    operation: str = Field(description="generate | embed | extract")
    model: str
    provider: str
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0)
    estimated: bool = Field(description="True: a tokenizer estimate, not the provider's own count")
    trace_id: str | None = Field(default=None, description="32 hex digits of the W3C trace the call ran in")
    calls: int = Field(
        default=1, ge=1, description="Calls summed in this event (> 1 only for a roll-up, which has no trace)"
    )


class _BudgetCrossed(EventData):
    period: Literal["day", "month"]
    period_start: date
    metric: Literal["tokens", "usd"]
    limit: float
    used: float
    ratio: float = Field(description="used / limit")


@registry.register("budget.warning", 1)
class BudgetWarning(_BudgetCrossed):
    """A tenant's usage crossed the warning ratio of a limit (once per period and metric)."""


@registry.register("budget.exceeded", 1)
class BudgetExceeded(_BudgetCrossed):
    """A tenant's usage reached a hard limit (once per period and metric)."""


@registry.register("reflection.requested", 1)
class ReflectionRequested(EventData):
    """A rule of the event engine asks for reflection on a tenant's recent memories."""

    rule_id: uuid.UUID
    reason: str
    since: datetime | None = Field(
        default=None, description="Memories since the rule's previous firing; null: no earlier firing"
    )
    memory_count: int = Field(ge=0, description="Memories the rule counted since its previous firing")
    trigger_key: str = Field(description="The firing's deterministic key; the envelope's idempotency key")


@registry.register("alert.raised", 1)
class AlertRaised(EventData):
    """A rule of the event engine raised an alert about the event it names."""

    rule_id: uuid.UUID
    severity: Literal["info", "warning", "critical"]
    title: str
    detail: str
    source_event_id: uuid.UUID
    source_type: str


@registry.register("eval.completed", 1)
class EvalCompleted(EventData):
    """A retrieval evaluation finished; its scores are in [0, 1]."""

    evaluation_id: uuid.UUID
    k: int = Field(ge=1)
    recall_at_k: float = Field(ge=0, le=1)
    mrr: float = Field(ge=0, le=1)
    ndcg_at_k: float = Field(ge=0, le=1)
    cases: int = Field(ge=0)


@registry.register("reflection.created", 1)
class ReflectionCreated(EventData):
    """A reflection was stored as a `reflective` memory, with the memories it was written from."""

    reflection_id: uuid.UUID = Field(description="The id of the reflective memory")
    source_ids: list[uuid.UUID]
    model: str
    prompt_version: str
    request_event_id: uuid.UUID = Field(description="The reflection.requested event it answered")


@registry.register("graph.updated", 1)
class GraphUpdated(EventData):
    """The knowledge graph changed: a memory's facts were merged in (or its deletion pruned them)."""

    memory_id: uuid.UUID | None = Field(default=None, description="Null for an explicit extraction")
    nodes_created: int = Field(ge=0)
    nodes_merged: int = Field(ge=0, description="Entities resolved onto existing nodes, duplicates folded")
    edges_created: int = Field(ge=0)
    edges_closed: int = Field(ge=0, description="Edges ended by a contradicting newer fact")
    edges_pruned: int = Field(ge=0, description="Edges deleted because no memory supports them any more")
    nodes_pruned: int = Field(default=0, ge=0, description="Nodes deleted with nothing left to them")
