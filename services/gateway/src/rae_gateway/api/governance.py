"""Governance and cost routes, forwarded to the cost service.

Budgets are set by the platform admin (RAE_ADMIN_TOKEN), who also reads every tenant's; a tenant
reads its own budget and usage with `governance:read` (which its `admin` scope includes), never
another tenant's (403, as for a missing scope).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from rae_common.app import StateDep
from rae_common.auth import Principal
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
from rae_common.errors import ProblemError
from rae_gateway.api.budget import BudgetDep
from rae_gateway.api.models import problems
from rae_gateway.api.proxy import forward
from rae_gateway.api.security import (
    DOCUMENTED_CREDENTIALS,
    PLATFORM_ADMIN,
    AdminDep,
    authenticate,
    missing_scope,
    platform_admin,
    require_scope,
)

router = APIRouter(prefix="/v1", dependencies=DOCUMENTED_CREDENTIALS, responses=problems(401, 403, 422, 503))

TenantPath = Annotated[TenantId, Path(min_length=1, max_length=64, description="The tenant's id.")]
GovernanceReadDep = Annotated[Principal, Depends(require_scope("governance:read"))]


async def _tenant_reader(request: Request, state: StateDep) -> Principal | None:
    """None for the platform admin; otherwise the caller, who must hold `governance:read`."""
    if platform_admin(request, state):
        return None
    principal = await authenticate(request, state)
    if not principal.has("governance:read"):
        raise missing_scope("governance:read")
    return principal


async def _reader_of(tenant_id: TenantPath, request: Request, state: StateDep) -> Principal:
    """The platform admin, or the tenant itself with `governance:read`."""
    principal = await _tenant_reader(request, state)
    if principal is None:
        return _as_tenant(tenant_id, PLATFORM_ADMIN)
    if principal.tenant_id != tenant_id:
        raise ProblemError(403, "A tenant may read only its own budget and usage.", slug="other-tenant")
    return principal


ReaderDep = Annotated[Principal, Depends(_reader_of)]


def _as_tenant(tenant_id: str, actor: str) -> Principal:
    return Principal(subject=actor, tenant_id=tenant_id, scopes=frozenset({"admin"}))


class GovernanceIndex(BaseModel):
    tenant_id: str | None = Field(description="The caller's tenant; null for the platform admin token.")
    links: dict[str, str] = Field(
        description="The governance routes the caller may use, with its own tenant id filled in."
    )


@router.get(
    "/governance",
    tags=["governance"],
    response_model=GovernanceIndex,
    summary="Where the caller's usage, budget and cost logs are (platform admin: every tenant's).",
)
async def governance_index(request: Request, state: StateDep) -> GovernanceIndex:
    # A client exploring the API lands here first: it gets its own routes, not a bare 404.
    principal = await _tenant_reader(request, state)
    if principal is None:
        tenant = "{tenant_id}"
        return GovernanceIndex(
            tenant_id=None,
            links={
                "usage": f"/v1/governance/tenant/{tenant}",
                "budget": f"/v1/governance/tenant/{tenant}/budget",
                "overview": "/v1/governance/overview",
            },
        )
    return GovernanceIndex(
        tenant_id=principal.tenant_id,
        links={
            "usage": f"/v1/governance/tenant/{principal.tenant_id}",
            "budget": f"/v1/governance/tenant/{principal.tenant_id}/budget",
            "cost_logs": "/v1/cost/logs",
        },
    )


@router.get(
    "/governance/tenant/{tenant_id}/budget",
    tags=["governance"],
    response_model=BudgetOut,
    summary="A tenant's budget (all limits null when it never set one).",
)
async def get_budget(
    tenant_id: TenantPath, request: Request, state: StateDep, principal: ReaderDep
) -> Response:
    return await forward(state, request, "cost", f"/v1/governance/tenant/{tenant_id}/budget", principal)


@router.put(
    "/governance/tenant/{tenant_id}/budget",
    tags=["governance"],
    response_model=BudgetOut,
    responses=problems(413),
    summary="Set a tenant's daily/monthly token and USD budget (admin; null = unlimited).",
)
async def put_budget(
    tenant_id: TenantPath,
    body: BudgetIn,  # noqa: ARG001 (validated here; the original bytes are forwarded)
    request: Request,
    state: StateDep,
    actor: AdminDep,
    budgets: BudgetDep,
) -> Response:
    response = await forward(
        state, request, "cost", f"/v1/governance/tenant/{tenant_id}/budget", _as_tenant(tenant_id, actor)
    )
    if response.status_code == 200:
        await budgets.forget(tenant_id)  # the new limits apply to the next request
    return response


@router.get(
    "/governance/tenant/{tenant_id}",
    tags=["governance"],
    response_model=TenantUsage,
    summary="A tenant's usage by day and model, its current day and month, and what remains.",
)
async def tenant_usage(
    tenant_id: TenantPath,
    query: Annotated[UsageQuery, Query()],  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: ReaderDep,
) -> Response:
    return await forward(state, request, "cost", f"/v1/governance/tenant/{tenant_id}", principal)


@router.get(
    "/governance/overview",
    tags=["governance"],
    response_model=Overview,
    summary="Every tenant's current usage and budget state (admin).",
)
async def overview(
    query: Annotated[OverviewQuery, Query()],  # noqa: ARG001
    request: Request,
    state: StateDep,
    actor: AdminDep,
) -> Response:
    return await forward(state, request, "cost", "/v1/governance/overview", _as_tenant("admin", actor))


@router.get(
    "/cost/logs",
    tags=["governance"],
    response_model=CostLogPage,
    summary="The caller's tenant's model calls with tokens and cost, newest first.",
)
async def cost_logs(
    query: Annotated[CostLogQuery, Query()],  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: GovernanceReadDep,
) -> Response:
    return await forward(state, request, "cost", "/v1/cost/logs", principal)
