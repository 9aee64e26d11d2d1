"""Governance and cost routes (thin: validate, call the service). The gateway checks who may
call them; the tenant comes from the path (governance) or `X-Tenant-ID` (logs)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_common.contracts.cost import (
    BudgetIn,
    BudgetOut,
    CostLogPage,
    CostLogQuery,
    Overview,
    OverviewQuery,
    TenantId,
    TenantUsage,
    UsageQuery,
)
from rae_cost.service import CostService

router = APIRouter()


async def get_service(state: StateDep) -> CostService:
    service: CostService = state.get("service")
    return service


ServiceDep = Annotated[CostService, Depends(get_service)]
TenantPath = Annotated[TenantId, Path(min_length=1, max_length=64, description="The tenant's id.")]


@router.get(
    "/v1/governance/tenant/{tenant_id}/budget",
    response_model=BudgetOut,
    tags=["governance"],
    summary="A tenant's budget (all limits null when it never set one).",
)
async def get_budget(tenant_id: TenantPath, service: ServiceDep) -> dict[str, Any]:
    return await service.get_budget(tenant_id)


@router.put(
    "/v1/governance/tenant/{tenant_id}/budget",
    response_model=BudgetOut,
    tags=["governance"],
    summary="Replace a tenant's budget; limits already reached are announced at once.",
)
async def put_budget(tenant_id: TenantPath, body: BudgetIn, service: ServiceDep) -> dict[str, Any]:
    return await service.put_budget(tenant_id, body)


@router.get(
    "/v1/governance/tenant/{tenant_id}",
    response_model=TenantUsage,
    tags=["governance"],
    summary="A tenant's current day and month against its budget, and its usage by day and model.",
)
async def tenant_usage(
    tenant_id: TenantPath, query: Annotated[UsageQuery, Query()], service: ServiceDep
) -> dict[str, Any]:
    return await service.tenant_usage(tenant_id, query.since, query.until)


@router.get(
    "/v1/governance/overview",
    response_model=Overview,
    tags=["governance"],
    summary="Every tenant's current usage and budget state, by tenant id.",
)
async def overview(query: Annotated[OverviewQuery, Query()], service: ServiceDep) -> dict[str, Any]:
    return await service.overview(query.cursor, query.limit)


@router.get(
    "/v1/cost/logs",
    response_model=CostLogPage,
    tags=["cost"],
    summary="The tenant's recorded model calls, newest first.",
)
async def cost_logs(
    tenant_id: TenantDep, query: Annotated[CostLogQuery, Query()], service: ServiceDep
) -> dict[str, Any]:
    return await service.logs(tenant_id, query)
