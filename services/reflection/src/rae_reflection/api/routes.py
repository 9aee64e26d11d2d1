"""Reflection routes (thin: validate, call the service, map to responses)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_common.contracts.erasure import ForgetMemories, ReflectionsForgotten
from rae_common.contracts.reflection import (
    ReflectionDetail,
    ReflectionListQuery,
    ReflectionPage,
    TriggerAccepted,
    TriggerRequest,
)
from rae_reflection.service import ReflectionService

router = APIRouter(tags=["reflections"])


async def get_service(state: StateDep) -> ReflectionService:
    service: ReflectionService = state.get("service")
    return service


ServiceDep = Annotated[ReflectionService, Depends(get_service)]


@router.get("/v1/reflections", response_model=ReflectionPage, summary="List reflections, newest first.")
async def list_reflections(
    tenant_id: TenantDep, query: Annotated[ReflectionListQuery, Query()], service: ServiceDep
) -> dict[str, Any]:
    """The tenant's reflections, newest first."""
    items, next_cursor = await service.page(tenant_id, query.cursor, query.limit)
    return {"items": items, "next_cursor": next_cursor}


@router.post(
    "/v1/reflections/trigger",
    status_code=202,
    response_model=TriggerAccepted,
    summary="Ask for reflection on the tenant's memories since its last reflection.",
)
async def trigger(
    tenant_id: TenantDep,
    service: ServiceDep,
    body: Annotated[TriggerRequest | None, Body()] = None,
) -> dict[str, Any]:
    """Emit a `reflection.requested` event; the reflections follow asynchronously."""
    request_id = await service.trigger(tenant_id, body or TriggerRequest())
    return {"request_id": request_id, "status": "accepted"}


@router.post(
    "/v1/reflections/forget",
    response_model=ReflectionsForgotten,
    summary="Delete the reflections citing these memories (internal: called by erasures).",
)
async def forget(body: ForgetMemories, tenant_id: TenantDep, service: ServiceDep) -> dict[str, Any]:
    """Delete the reflections that cite (or are) these memories; their ids."""
    return {"reflection_ids": await service.forget(tenant_id, body.memory_ids)}


@router.get(
    "/v1/reflections/{reflection_id}",
    response_model=ReflectionDetail,
    summary="Read one reflection with its source memories.",
)
async def get_reflection(
    reflection_id: uuid.UUID, tenant_id: TenantDep, service: ServiceDep
) -> dict[str, Any]:
    """One reflection and the memories it was written from."""
    return await service.get(tenant_id, reflection_id)
