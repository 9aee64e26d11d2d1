"""Event engine routes (thin: validate, call the service). The tenant comes from `X-Tenant-ID`;
the gateway checks `events:read` / `events:write` before forwarding."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_common.contracts.events import (
    DeadLetterPage,
    DeadLetterQuery,
    EventPage,
    FiringPage,
    FiringQuery,
    Replay,
    RuleOut,
    RulePage,
    RuleQuery,
)
from rae_events.domain.rules import RuleSpec
from rae_events.service import EventsService

router = APIRouter(prefix="/v1/events", tags=["events"])


async def get_service(state: StateDep) -> EventsService:
    service: EventsService = state.get("service")
    return service


ServiceDep = Annotated[EventsService, Depends(get_service)]
RuleBody = Annotated[RuleSpec, Body(discriminator="type")]
RuleId = Annotated[uuid.UUID, Path(description="The rule's id.")]


@router.get("/log", response_model=EventPage, summary="Events the engine consumed, newest first.")
async def list_events(
    tenant_id: TenantDep,
    service: ServiceDep,
    event_type: Annotated[str | None, Query(alias="type", max_length=100)] = None,
    cursor: Annotated[str | None, Query(description="Where the previous page ended.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return await service.log(tenant_id, event_type=event_type, cursor=cursor, limit=limit)


@router.get("/rules", response_model=RulePage, summary="The tenant's rules, oldest first.")
async def list_rules(
    tenant_id: TenantDep, query: Annotated[RuleQuery, Query()], service: ServiceDep
) -> dict[str, Any]:
    return await service.list_rules(tenant_id, query)


@router.post("/rules", response_model=RuleOut, status_code=201, summary="Create a rule.")
async def create_rule(tenant_id: TenantDep, body: RuleBody, service: ServiceDep) -> dict[str, Any]:
    return await service.create_rule(tenant_id, body)


@router.get("/rules/{rule_id}", response_model=RuleOut, summary="One rule.")
async def get_rule(tenant_id: TenantDep, rule_id: RuleId, service: ServiceDep) -> dict[str, Any]:
    return await service.get_rule(tenant_id, rule_id)


@router.put("/rules/{rule_id}", response_model=RuleOut, summary="Replace a rule (its counters stay).")
async def replace_rule(
    tenant_id: TenantDep, rule_id: RuleId, body: RuleBody, service: ServiceDep
) -> dict[str, Any]:
    return await service.replace_rule(tenant_id, rule_id, body)


@router.delete("/rules/{rule_id}", status_code=204, summary="Delete a rule (its firings stay in the audit).")
async def delete_rule(tenant_id: TenantDep, rule_id: RuleId, service: ServiceDep) -> Response:
    await service.delete_rule(tenant_id, rule_id)
    return Response(status_code=204)


@router.get("/triggers", response_model=FiringPage, summary="The firing audit, newest first.")
async def list_firings(
    tenant_id: TenantDep, query: Annotated[FiringQuery, Query()], service: ServiceDep
) -> dict[str, Any]:
    return await service.firings(tenant_id, query)


@router.get("/dlq", response_model=DeadLetterPage, summary="Dead webhooks and dead letters, newest first.")
async def list_dead_letters(
    tenant_id: TenantDep, query: Annotated[DeadLetterQuery, Query()], service: ServiceDep
) -> dict[str, Any]:
    return await service.dead_letters(tenant_id, query)


@router.post(
    "/dlq/{entry_id}/replay",
    response_model=Replay,
    status_code=202,
    summary="Deliver a dead-letter entry again.",
    responses={404: {"description": "No such entry."}, 409: {"description": "Not dead (any more)."}},
)
async def replay(
    tenant_id: TenantDep,
    entry_id: Annotated[uuid.UUID, Path(description="A dead-letter entry's id.")],
    service: ServiceDep,
) -> dict[str, Any]:
    return await service.replay(tenant_id, entry_id)
