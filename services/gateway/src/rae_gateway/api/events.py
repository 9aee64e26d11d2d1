"""Event engine routes (rules, firing audit, dead letters), forwarded to the events service."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from rae_common.app import StateDep
from rae_common.auth import Principal
from rae_common.contracts.events import (
    DeadLetterPage,
    DeadLetterQuery,
    FiringPage,
    FiringQuery,
    Replay,
    RuleIn,
    RuleOut,
    RulePage,
    RuleQuery,
)
from rae_gateway.api.models import problems
from rae_gateway.api.proxy import forward
from rae_gateway.api.security import DOCUMENTED_CREDENTIALS, require_scope

router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    dependencies=DOCUMENTED_CREDENTIALS,
    responses=problems(401, 403, 422, 503),
)

EventsReadDep = Annotated[Principal, Depends(require_scope("events:read"))]
EventsWriteDep = Annotated[Principal, Depends(require_scope("events:write"))]
RuleBody = Annotated[RuleIn, Body()]


@router.get("/rules", response_model=RulePage, summary="The tenant's rules, oldest first.")
async def list_rules(
    query: Annotated[RuleQuery, Query()],  # noqa: ARG001 (validated here; the query string is forwarded)
    request: Request,
    state: StateDep,
    principal: EventsReadDep,
) -> Response:
    return await forward(state, request, "events", "/v1/events/rules", principal)


@router.post("/rules", response_model=RuleOut, status_code=201, summary="Create a rule.")
async def create_rule(
    body: RuleBody,  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: EventsWriteDep,
) -> Response:
    return await forward(state, request, "events", "/v1/events/rules", principal)


@router.get("/rules/{rule_id}", response_model=RuleOut, responses=problems(404), summary="One rule.")
async def get_rule(
    rule_id: uuid.UUID, request: Request, state: StateDep, principal: EventsReadDep
) -> Response:
    return await forward(state, request, "events", f"/v1/events/rules/{rule_id}", principal)


@router.put(
    "/rules/{rule_id}",
    response_model=RuleOut,
    responses=problems(404),
    summary="Replace a rule (its counters stay).",
)
async def replace_rule(
    rule_id: uuid.UUID,
    body: RuleBody,  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: EventsWriteDep,
) -> Response:
    return await forward(state, request, "events", f"/v1/events/rules/{rule_id}", principal)


@router.delete(
    "/rules/{rule_id}",
    status_code=204,
    response_class=Response,
    responses=problems(404),
    summary="Delete a rule (its firings stay in the audit).",
)
async def delete_rule(
    rule_id: uuid.UUID, request: Request, state: StateDep, principal: EventsWriteDep
) -> Response:
    return await forward(state, request, "events", f"/v1/events/rules/{rule_id}", principal)


@router.get("/triggers", response_model=FiringPage, summary="The firing audit, newest first.")
async def list_firings(
    query: Annotated[FiringQuery, Query()],  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: EventsReadDep,
) -> Response:
    return await forward(state, request, "events", "/v1/events/triggers", principal)


@router.get("/dlq", response_model=DeadLetterPage, summary="Dead webhooks and dead letters, newest first.")
async def list_dead_letters(
    query: Annotated[DeadLetterQuery, Query()],  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: EventsReadDep,
) -> Response:
    return await forward(state, request, "events", "/v1/events/dlq", principal)


@router.post(
    "/dlq/{entry_id}/replay",
    response_model=Replay,
    status_code=202,
    responses=problems(404, 409),
    summary="Deliver a dead-letter entry again.",
)
async def replay(
    entry_id: uuid.UUID, request: Request, state: StateDep, principal: EventsWriteDep
) -> Response:
    return await forward(state, request, "events", f"/v1/events/dlq/{entry_id}/replay", principal)
