"""Event engine routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_common.contracts.events import EventPage
from rae_events.adapters.event_log import EventLog

router = APIRouter(prefix="/v1/events", tags=["events"])


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
