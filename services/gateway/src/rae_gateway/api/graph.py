"""Knowledge-graph routes, forwarded to the graph service (query strings go on as sent; the
parameters are declared here to validate them and to document them in /openapi.json)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from rae_common.app import StateDep
from rae_common.auth import Principal
from rae_common.contracts.graph import (
    EdgePage,
    ExtractResult,
    GraphExtractRequest,
    GraphSearchRequest,
    GraphSearchResponse,
    NodePage,
    PathOut,
    StatsOut,
    SubgraphOut,
)
from rae_gateway.api.budget import BUDGET_HELD, BudgetDep, guarded_forward
from rae_gateway.api.models import problems
from rae_gateway.api.proxy import forward
from rae_gateway.api.security import DOCUMENTED_CREDENTIALS, require_scope
from rae_gateway.domain.budget import estimate_tokens

router = APIRouter(prefix="/v1", dependencies=DOCUMENTED_CREDENTIALS, responses=problems(401, 403, 422, 503))

GraphReadDep = Annotated[Principal, Depends(require_scope("graph:read"))]
GraphWriteDep = Annotated[Principal, Depends(require_scope("graph:write"))]
MemoriesReadDep = Annotated[Principal, Depends(require_scope("memories:read"))]
Depth = Annotated[int, Query(ge=1, le=3, description="Hops, at most 3.")]
Cursor = Annotated[str | None, Query(max_length=500)]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Current = Annotated[bool, Query(description="Only relations still valid.")]
Name = Annotated[str, Query(min_length=1, max_length=200, description="Entity id, name or alias.")]


@router.get("/graph/nodes", tags=["graph"], response_model=NodePage, summary="Entities, by type or name.")
async def list_nodes(
    request: Request,
    state: StateDep,
    principal: GraphReadDep,
    type: Annotated[str | None, Query(pattern=r"^[a-z][a-z_]{0,49}$")] = None,  # noqa: A002, ARG001
    name: Annotated[str | None, Query(min_length=1, max_length=200)] = None,  # noqa: ARG001
    limit: Limit = 50,  # noqa: ARG001
    cursor: Cursor = None,  # noqa: ARG001
) -> Response:
    return await forward(state, request, "graph", "/v1/graph/nodes", principal)


@router.get("/graph/edges", tags=["graph"], response_model=EdgePage, summary="Relations, filtered.")
async def list_edges(
    request: Request,
    state: StateDep,
    principal: GraphReadDep,
    relation: Annotated[str | None, Query(pattern=r"^[A-Z][A-Z0-9_]{0,99}$")] = None,  # noqa: ARG001
    node_id: uuid.UUID | None = None,  # noqa: ARG001
    memory_id: uuid.UUID | None = None,  # noqa: ARG001
    current: Current = False,  # noqa: ARG001
    limit: Limit = 50,  # noqa: ARG001
    cursor: Cursor = None,  # noqa: ARG001
) -> Response:
    return await forward(state, request, "graph", "/v1/graph/edges", principal)


@router.get(
    "/graph/nodes/{node_id}/neighbors",
    tags=["graph"],
    response_model=SubgraphOut,
    responses=problems(404),
    summary="An entity's neighbourhood.",
)
async def neighbors(
    node_id: uuid.UUID,
    request: Request,
    state: StateDep,
    principal: GraphReadDep,
    depth: Depth = 1,  # noqa: ARG001
    current: Current = True,  # noqa: ARG001
) -> Response:
    return await forward(state, request, "graph", f"/v1/graph/nodes/{node_id}/neighbors", principal)


@router.get(
    "/graph/subgraph",
    tags=["graph"],
    response_model=SubgraphOut,
    responses=problems(404),
    summary="The subgraph around a named entity.",
)
async def subgraph(
    entity: Name,  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: GraphReadDep,
    depth: Depth = 1,  # noqa: ARG001
    current: Current = True,  # noqa: ARG001
) -> Response:
    return await forward(state, request, "graph", "/v1/graph/subgraph", principal)


@router.get(
    "/graph/path",
    tags=["graph"],
    response_model=PathOut,
    responses=problems(404),
    summary="A shortest path between two entities.",
)
async def path(
    source: Annotated[str, Query(alias="from", min_length=1, max_length=200)],  # noqa: ARG001
    target: Annotated[str, Query(alias="to", min_length=1, max_length=200)],  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: GraphReadDep,
) -> Response:
    return await forward(state, request, "graph", "/v1/graph/path", principal)


@router.get("/graph/stats", tags=["graph"], response_model=StatsOut, summary="Counts by type.")
async def stats(request: Request, state: StateDep, principal: GraphReadDep) -> Response:
    return await forward(state, request, "graph", "/v1/graph/stats", principal)


@router.post(
    "/graph/extract",
    tags=["graph"],
    response_model=ExtractResult,
    responses={**problems(402, 413), **BUDGET_HELD},
    summary="Extract entities and relations from text, optionally storing them (budget-guarded).",
)
async def extract(
    body: GraphExtractRequest,
    request: Request,
    state: StateDep,
    principal: GraphWriteDep,
    budgets: BudgetDep,
) -> Response:
    reserve = estimate_tokens(len(body.text), budgets.extract_output_tokens)
    return await guarded_forward(
        state, request, "graph", "/v1/graph/extract", principal, reserve_tokens=reserve
    )


@router.post(
    "/search/graph",
    tags=["search"],
    response_model=GraphSearchResponse,
    responses=problems(404, 413),
    summary="GraphRAG: memories behind the query's entities and neighbours, fused with hybrid search.",
)
async def search_graph(
    body: GraphSearchRequest,  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: GraphReadDep,
    _memories: MemoriesReadDep,
) -> Response:
    return await forward(state, request, "graph", "/v1/search/graph", principal)
