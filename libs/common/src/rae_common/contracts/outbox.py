"""Internal contract of publishing again: what an operator asks a service's outbox, and what it
answers. Not exposed by the gateway as is (its admin route fans out to every service)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import ConfigDict, Field

from rae_common.contracts.common import TimeWindow

__all__ = ["OUTBOX_SERVICES", "REPUBLISH_PATH", "OutboxService", "Republish", "Republished"]

# The services that announce their changes through an outbox (`postgres_with_outbox`).
OutboxService = Literal["memory", "ml", "graph", "reflection", "cost", "events"]
OUTBOX_SERVICES: tuple[OutboxService, ...] = get_args(OutboxService)
REPUBLISH_PATH = "/v1/outbox/republish"


class Republish(TimeWindow):
    """Publish again the events published from `since` (inclusive) to `until` (exclusive); an
    open bound reaches the oldest event kept (OUTBOX_RETENTION_HOURS) or now."""

    model_config = ConfigDict(extra="forbid")


class Republished(TimeWindow):
    service: str
    requeued: int = Field(description="Published events queued again; the relay sends them at once.")
