"""Reflections (reflection service) and search evaluations (memory service) through the gateway.

A manual reflection trigger spends tokens later, in the reflection service: it passes the cost
guard (402 when the tenant's budget is spent) but reserves nothing, since its spend is recorded by
the cost service when it happens.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from rae_common.app import StateDep
from rae_common.auth import Principal
from rae_common.contracts.memory import EvaluationOut, EvaluationRequest
from rae_common.contracts.reflection import (
    ReflectionDetail,
    ReflectionListQuery,
    ReflectionPage,
    TriggerAccepted,
    TriggerRequest,
)
from rae_gateway.api.budget import BUDGET_HELD, guarded_forward
from rae_gateway.api.models import problems
from rae_gateway.api.proxy import forward
from rae_gateway.api.security import DOCUMENTED_CREDENTIALS, require_scope

router = APIRouter(prefix="/v1", dependencies=DOCUMENTED_CREDENTIALS, responses=problems(401, 403, 422, 503))

ReflectionsReadDep = Annotated[Principal, Depends(require_scope("reflections:read"))]
ReflectionsWriteDep = Annotated[Principal, Depends(require_scope("reflections:write"))]
MemoriesReadDep = Annotated[Principal, Depends(require_scope("memories:read"))]


@router.get(
    "/reflections", tags=["reflections"], response_model=ReflectionPage, summary="Reflections, newest first."
)
async def list_reflections(
    query: Annotated[ReflectionListQuery, Query()],  # noqa: ARG001 (validated here; forwarded as sent)
    request: Request,
    state: StateDep,
    principal: ReflectionsReadDep,
) -> Response:
    return await forward(state, request, "reflection", "/v1/reflections", principal)


@router.post(
    "/reflections/trigger",
    tags=["reflections"],
    status_code=202,
    response_model=TriggerAccepted,
    responses={**problems(402), **BUDGET_HELD},
    summary="Ask for reflection on the memories since the last one (budget-guarded).",
)
async def trigger_reflection(
    body: Annotated[TriggerRequest | None, Body()],  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: ReflectionsWriteDep,
) -> Response:
    return await guarded_forward(
        state, request, "reflection", "/v1/reflections/trigger", principal, reserve_tokens=0
    )


@router.get(
    "/reflections/{reflection_id}",
    tags=["reflections"],
    response_model=ReflectionDetail,
    responses=problems(404),
    summary="One reflection with the memories it was written from.",
)
async def get_reflection(
    reflection_id: uuid.UUID, request: Request, state: StateDep, principal: ReflectionsReadDep
) -> Response:
    return await forward(state, request, "reflection", f"/v1/reflections/{reflection_id}", principal)


@router.post(
    "/evaluations",
    tags=["evaluations"],
    status_code=201,
    response_model=EvaluationOut,
    summary="Score hybrid search on labelled queries: recall@k, MRR, nDCG@k (emits eval.completed).",
)
async def create_evaluation(
    body: EvaluationRequest,  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: MemoriesReadDep,
) -> Response:
    return await forward(state, request, "memory", "/v1/evaluations", principal)


@router.get(
    "/evaluations/{evaluation_id}",
    tags=["evaluations"],
    response_model=EvaluationOut,
    responses=problems(404),
    summary="Read an evaluation run.",
)
async def get_evaluation(
    evaluation_id: uuid.UUID, request: Request, state: StateDep, principal: MemoriesReadDep
) -> Response:
    return await forward(state, request, "memory", f"/v1/evaluations/{evaluation_id}", principal)
