"""Public routes. Each checks its scope (and rate limit), validates the request with the shared
contract models, then forwards the original bytes to the service that owns the data."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response

from rae_common.app import StateDep
from rae_common.auth import Principal
from rae_common.contracts.erasure import ACTOR_HEADER, actor_header
from rae_common.contracts.events import EventPage
from rae_common.contracts.memory import (
    BatchCreate,
    BatchResult,
    EraseResult,
    HybridSearchRequest,
    IngestResult,
    MemoryCreate,
    MemoryListQuery,
    MemoryOut,
    MemoryPage,
    MemoryPatch,
    SearchResponse,
)
from rae_common.contracts.ml import (
    EmbedRequest,
    EmbedResponse,
    ExtractRequest,
    ExtractResponse,
    GenerateRequest,
    GenerateResponse,
)
from rae_gateway.api.budget import BudgetDep, guarded_forward
from rae_gateway.api.limits import rate_limit
from rae_gateway.api.models import (
    INGEST_OPENAPI,
    SuiteStatus,
    problems,
    validate_ingest_body,
)
from rae_gateway.api.proxy import forward, service_url
from rae_gateway.api.security import DOCUMENTED_CREDENTIALS, PrincipalDep, require_scope
from rae_gateway.domain.budget import estimate_tokens
from rae_gateway.domain.limits import Quota

router = APIRouter(prefix="/v1", dependencies=DOCUMENTED_CREDENTIALS, responses=problems(401, 403, 422, 503))

SERVICES = ("memory", "ml", "graph", "reflection", "cost", "events")

MemoriesReadDep = Annotated[Principal, Depends(require_scope("memories:read"))]
MemoriesWriteDep = Annotated[Principal, Depends(require_scope("memories:write"))]
MlUseDep = Annotated[Principal, Depends(require_scope("ml:use"))]
EventsReadDep = Annotated[Principal, Depends(require_scope("events:read"))]

# Declared after the credential in each route: the limit is keyed on the principal it set.
CreateQuotaDep = Annotated[Quota | None, Depends(rate_limit("memories_create"))]
SearchQuotaDep = Annotated[Quota | None, Depends(rate_limit("search"))]
GenerateQuotaDep = Annotated[Quota | None, Depends(rate_limit("ml_generate"))]
_LIMITED = problems(429, 413)
_WITH_BODY = problems(413)


@router.post(
    "/memories",
    tags=["memories"],
    status_code=201,
    response_model=MemoryOut,
    responses={200: {"model": MemoryOut, "description": "The same content was already stored."}, **_LIMITED},
    summary="Store a memory (honours Idempotency-Key).",
)
async def create_memory(
    body: MemoryCreate,  # noqa: ARG001 (validated here; the original bytes are forwarded)
    request: Request,
    state: StateDep,
    principal: MemoriesWriteDep,
    _quota: CreateQuotaDep,
) -> Response:
    return await forward(state, request, "memory", "/v1/memories", principal)


@router.post(
    "/memories/batch",
    tags=["memories"],
    status_code=201,
    response_model=BatchResult,
    responses=_LIMITED,
    summary="Store up to 1000 memories at once.",
)
async def create_memories(
    body: BatchCreate,  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: MemoriesWriteDep,
    _quota: CreateQuotaDep,
) -> Response:
    return await forward(state, request, "memory", "/v1/memories/batch", principal)


@router.post(
    "/memories/ingest",
    tags=["memories"],
    status_code=201,
    response_model=IngestResult,
    responses=problems(413, 415, 429),
    openapi_extra=INGEST_OPENAPI,
    summary="Ingest a document (multipart `file`, or JSON text) as chunked memories.",
)
async def ingest_document(
    request: Request, state: StateDep, principal: MemoriesWriteDep, _quota: CreateQuotaDep
) -> Response:
    await validate_ingest_body(request)
    return await forward(state, request, "memory", "/v1/memories/ingest", principal)


@router.get("/memories", tags=["memories"], response_model=MemoryPage, summary="List memories, newest first.")
async def list_memories(
    query: Annotated[MemoryListQuery, Query()],  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: MemoriesReadDep,
) -> Response:
    return await forward(state, request, "memory", "/v1/memories", principal)


@router.delete(
    "/memories",
    tags=["memories"],
    response_model=EraseResult,
    summary="Erase everything about a subject: memories, documents, reflections, graph, cached embeddings.",
)
async def erase_subject(
    subject: Annotated[str, Query(min_length=1, max_length=200)],  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: MemoriesWriteDep,
) -> Response:
    # The erasure's audit row names who asked: the credential's subject, never the client's word.
    actor = {ACTOR_HEADER: actor_header(principal.subject)}
    return await forward(state, request, "memory", "/v1/memories", principal, extra_headers=actor)


@router.get(
    "/memories/{memory_id}",
    tags=["memories"],
    response_model=MemoryOut,
    responses=problems(404),
    summary="Read one memory.",
)
async def get_memory(
    memory_id: uuid.UUID, request: Request, state: StateDep, principal: MemoriesReadDep
) -> Response:
    return await forward(state, request, "memory", f"/v1/memories/{memory_id}", principal)


@router.patch(
    "/memories/{memory_id}",
    tags=["memories"],
    response_model=MemoryOut,
    responses=problems(404, 413),
    summary="Change a memory.",
)
async def update_memory(
    memory_id: uuid.UUID,
    body: MemoryPatch,  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: MemoriesWriteDep,
) -> Response:
    return await forward(state, request, "memory", f"/v1/memories/{memory_id}", principal)


@router.delete(
    "/memories/{memory_id}",
    tags=["memories"],
    status_code=204,
    response_class=Response,
    responses=problems(404),
    summary="Delete a memory.",
)
async def delete_memory(
    memory_id: uuid.UUID, request: Request, state: StateDep, principal: MemoriesWriteDep
) -> Response:
    return await forward(state, request, "memory", f"/v1/memories/{memory_id}", principal)


@router.post(
    "/search/hybrid",
    tags=["search"],
    response_model=SearchResponse,
    responses=_LIMITED,
    summary="Hybrid search: vector + keyword, weighted by recency and importance.",
)
async def hybrid_search(
    body: HybridSearchRequest,  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: MemoriesReadDep,
    _quota: SearchQuotaDep,
) -> Response:
    return await forward(state, request, "memory", "/v1/search/hybrid", principal)


@router.post(
    "/ml/embed", tags=["ml"], response_model=EmbedResponse, responses=_WITH_BODY, summary="Embed texts."
)
async def embed(
    body: EmbedRequest,  # noqa: ARG001
    request: Request,
    state: StateDep,
    principal: MlUseDep,
) -> Response:
    return await forward(state, request, "ml", "/v1/ml/embed", principal)


_SPENDS = problems(402, 413, 429)


@router.post(
    "/ml/generate",
    tags=["ml"],
    response_model=GenerateResponse,
    responses={
        **_SPENDS,
        200: {"content": {"text/event-stream": {"description": "With `stream: true` (see the ml API)."}}},
    },
    summary="Generate a chat completion (budget-guarded; optional JSON schema or SSE streaming).",
)
async def generate(
    body: GenerateRequest,
    request: Request,
    state: StateDep,
    principal: MlUseDep,
    _quota: GenerateQuotaDep,
) -> Response:
    reserve = estimate_tokens(sum(len(m.content) for m in body.messages), body.max_tokens)
    return await guarded_forward(
        state, request, "ml", "/v1/ml/generate", principal, reserve_tokens=reserve, stream=body.stream
    )


@router.post(
    "/ml/extract",
    tags=["ml"],
    response_model=ExtractResponse,
    responses=_SPENDS,
    summary="Extract entities and relations from text (budget-guarded).",
)
async def extract(
    body: ExtractRequest,
    request: Request,
    state: StateDep,
    principal: MlUseDep,
    _quota: GenerateQuotaDep,
    budgets: BudgetDep,
) -> Response:
    reserve = estimate_tokens(len(body.text), budgets.extract_output_tokens)
    return await guarded_forward(state, request, "ml", "/v1/ml/extract", principal, reserve_tokens=reserve)


@router.get(
    "/events/log",
    tags=["events"],
    response_model=EventPage,
    summary="Events the engine consumed for this tenant, newest first.",
)
async def list_events(
    request: Request,
    state: StateDep,
    principal: EventsReadDep,
    event_type: Annotated[str | None, Query(alias="type", max_length=100)] = None,  # noqa: ARG001
    cursor: Annotated[str | None, Query(description="Where the previous page ended.")] = None,  # noqa: ARG001
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,  # noqa: ARG001
) -> Response:
    return await forward(state, request, "events", "/v1/events/log", principal)


@router.get(
    "/status",
    tags=["operations"],
    response_model=SuiteStatus,
    summary="Readiness of every service behind the gateway.",
)
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
