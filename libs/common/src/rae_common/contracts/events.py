"""The event log API contract (events service routes, exposed as-is by the gateway)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

__all__ = ["EventPage", "LoggedEvent"]


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
