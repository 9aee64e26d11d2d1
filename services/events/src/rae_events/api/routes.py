"""Event engine routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_events.adapters.event_log import EventLog

router = APIRouter(prefix="/v1/events", tags=["events"])


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


@router.get("/log", response_model=EventPage, summary="Events the engine consumed, newest first.")
async def list_events(
    tenant_id: TenantDep,
    state: StateDep,
    event_type: Annotated[str | None, Query(alias="type", max_length=100)] = None,
    cursor: Annotated[datetime | None, Query(description="received_at of the last item seen")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    log: EventLog = state.get("event_log")
    items = await log.list(tenant_id, event_type=event_type, before=cursor, limit=limit)
    next_cursor = items[-1]["received_at"].isoformat() if len(items) == limit else None
    return {"items": items, "next_cursor": next_cursor}
