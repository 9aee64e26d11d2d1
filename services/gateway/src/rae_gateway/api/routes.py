"""Public routes. Each checks its scope, then forwards to the service that owns the data."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request, Response

from rae_common.app import StateDep
from rae_common.auth import Principal
from rae_gateway.api.proxy import forward, service_url
from rae_gateway.api.security import PrincipalDep, require_scope

router = APIRouter(prefix="/v1")

SERVICES = ("memory", "ml", "graph", "reflection", "cost", "events")


MemoriesReadDep = Annotated[Principal, Depends(require_scope("memories:read"))]
MemoriesWriteDep = Annotated[Principal, Depends(require_scope("memories:write"))]
EventsReadDep = Annotated[Principal, Depends(require_scope("events:read"))]


@router.post("/memories", tags=["memories"], status_code=201, summary="Store a memory.")
async def create_memory(request: Request, state: StateDep, principal: MemoriesWriteDep) -> Response:
    return await forward(state, request, "memory", "/v1/memories", principal)


@router.get("/memories/{memory_id}", tags=["memories"], summary="Read one memory.")
async def get_memory(
    memory_id: uuid.UUID,
    request: Request,
    state: StateDep,
    principal: MemoriesReadDep,
) -> Response:
    return await forward(state, request, "memory", f"/v1/memories/{memory_id}", principal)


@router.get("/events/log", tags=["events"], summary="Events the engine consumed for this tenant.")
async def list_events(request: Request, state: StateDep, principal: EventsReadDep) -> Response:
    return await forward(state, request, "events", "/v1/events/log", principal)


@router.get("/status", tags=["operations"], summary="Readiness of every service behind the gateway.")
async def suite_status(state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    assert state.http is not None
    client = state.http

    async def probe(service: str) -> tuple[str, dict[str, Any]]:
        try:
            answer = await client.get(service_url(state, service) + "/readyz", timeout=3.0)
        except httpx.HTTPError as exc:
            return service, {"ready": False, "error": type(exc).__name__}
        body = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
        return service, {"ready": answer.status_code == 200, "checks": body.get("checks", {})}

    results = dict(await asyncio.gather(*(probe(s) for s in SERVICES)))
    return {
        "tenant_id": principal.tenant_id,
        "ready": all(r["ready"] for r in results.values()),
        "services": results,
    }
