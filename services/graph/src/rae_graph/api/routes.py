"""The graph API: entities, relations, neighbourhoods, paths, statistics, extraction, GraphRAG."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_common.contracts.erasure import ForgetMemories, GraphForgotten
from rae_common.contracts.graph import (
    MAX_DEPTH,
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
from rae_common.errors import ProblemError
from rae_graph.service import GraphService, UnknownMemory

__all__ = ["router"]

router = APIRouter(tags=["graph"])


async def get_service(state: StateDep) -> GraphService:
    service: GraphService = state.get("service")
    return service


ServiceDep = Annotated[GraphService, Depends(get_service)]
Depth = Annotated[int, Query(ge=1, le=MAX_DEPTH, description=f"Hops, at most {MAX_DEPTH}.")]
Cursor = Annotated[str | None, Query(max_length=500)]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Relation = Annotated[str | None, Query(pattern=r"^[A-Z][A-Z0-9_]{0,99}$", description="e.g. WORKS_AT")]


@router.get("/v1/graph/nodes", response_model=NodePage, summary="List entities, filtered by type or name.")
async def list_nodes(
    tenant_id: TenantDep,
    service: ServiceDep,
    type: Annotated[str | None, Query(pattern=r"^[a-z][a-z_]{0,49}$")] = None,
    name: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Part of a name or alias")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    return await service.nodes_page(tenant_id, type=type, name=name, cursor=cursor, limit=limit)


@router.get("/v1/graph/edges", response_model=EdgePage, summary="List relations, filtered.")
async def list_edges(
    tenant_id: TenantDep,
    service: ServiceDep,
    relation: Relation = None,
    node_id: Annotated[uuid.UUID | None, Query(description="Edges touching this entity")] = None,
    memory_id: Annotated[uuid.UUID | None, Query(description="Edges this memory supports")] = None,
    current: Annotated[bool, Query(description="Only edges still valid")] = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    return await service.edges_page(
        tenant_id,
        relation=relation,
        node_id=node_id,
        memory_id=memory_id,
        current_only=current,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/v1/graph/nodes/{node_id}/neighbors", response_model=SubgraphOut, summary="An entity's neighbourhood."
)
async def neighbors(
    node_id: uuid.UUID,
    tenant_id: TenantDep,
    service: ServiceDep,
    depth: Depth = 1,
    current: Annotated[bool, Query(description="Only edges still valid")] = True,
) -> dict[str, Any]:
    node = await service.node(tenant_id, str(node_id))
    return await service.neighbourhood(tenant_id, [node.id], depth, current_only=current)


@router.get("/v1/graph/subgraph", response_model=SubgraphOut, summary="The subgraph around a named entity.")
async def subgraph(
    tenant_id: TenantDep,
    service: ServiceDep,
    entity: Annotated[str, Query(min_length=1, max_length=200, description="Entity id, name or alias")],
    depth: Depth = 2,
    current: Annotated[bool, Query(description="Only edges still valid")] = True,
) -> dict[str, Any]:
    node = await service.entity(tenant_id, entity)
    return await service.neighbourhood(tenant_id, [node.id], depth, current_only=current)


@router.get("/v1/graph/path", response_model=PathOut, summary="A shortest path between two entities.")
async def path(
    tenant_id: TenantDep,
    service: ServiceDep,
    source: Annotated[
        str, Query(alias="from", min_length=1, max_length=200, description="Id, name or alias")
    ],
    target: Annotated[str, Query(alias="to", min_length=1, max_length=200, description="Id, name or alias")],
) -> dict[str, Any]:
    start = await service.entity(tenant_id, source)
    end = await service.entity(tenant_id, target)
    return await service.path(tenant_id, start, end)


@router.get("/v1/graph/stats", response_model=StatsOut, summary="Entity and relation counts by type.")
async def stats(tenant_id: TenantDep, service: ServiceDep) -> dict[str, Any]:
    return await service.stats(tenant_id)


@router.post(
    "/v1/graph/forget",
    response_model=GraphForgotten,
    summary="Drop memories from the graph's provenance (internal: called by erasures).",
)
async def forget(body: ForgetMemories, tenant_id: TenantDep, service: ServiceDep) -> dict[str, Any]:
    """Remove the memories from every provenance list; prune edges and entities left with none."""
    counts = await service.forget(tenant_id, body.memory_ids)
    return {"edges_pruned": counts.edges_pruned, "nodes_pruned": counts.nodes_pruned}


@router.post("/v1/graph/extract", response_model=ExtractResult, summary="Extract entities and relations.")
async def extract(body: GraphExtractRequest, tenant_id: TenantDep, service: ServiceDep) -> dict[str, Any]:
    try:
        return await service.extract(tenant_id, body.text, store=body.store, memory_id=body.memory_id)
    except UnknownMemory as exc:
        raise ProblemError(
            422,
            f"memory_id {body.memory_id} names no memory of this tenant; stored facts need an existing one.",
            slug="unknown-memory",
            extensions={
                "errors": [{"loc": ["body", "memory_id"], "msg": "No such memory.", "type": "unknown_memory"}]
            },
        ) from exc


@router.post(
    "/v1/search/graph",
    response_model=GraphSearchResponse,
    tags=["search"],
    summary="GraphRAG: memories around the query's entities, fused with hybrid search.",
)
async def graph_search(body: GraphSearchRequest, tenant_id: TenantDep, service: ServiceDep) -> dict[str, Any]:
    return await service.search(tenant_id, body.query, body.k, body.depth)
