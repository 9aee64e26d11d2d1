"""Memory routes (thin: validate, call the service, map to responses)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile as StarletteUploadFile

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_common.contracts.erasure import ACTOR_HEADER, actor_from_header
from rae_common.contracts.memory import (
    BatchCreate,
    BatchResult,
    EraseResult,
    HybridSearchRequest,
    IngestResult,
    IngestText,
    Layer,
    MemoryCreate,
    MemoryOut,
    MemoryPage,
    MemoryPatch,
    MetadataFilter,
    SearchResponse,
    metadata_filters,
)
from rae_common.errors import ProblemError
from rae_common.input_checks import text_errors
from rae_memory.adapters.sql import Filters
from rae_memory.service import IngestRequest, MemoryService, ingest

router = APIRouter(tags=["memories"])


async def get_service(state: StateDep) -> MemoryService:
    service: MemoryService = state.get("service")
    return service


ServiceDep = Annotated[MemoryService, Depends(get_service)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Retries with this key replay the first answer.",
    ),
]


@router.post("/v1/memories", status_code=201, response_model=MemoryOut, summary="Store a memory.")
async def create_memory(
    body: MemoryCreate, tenant_id: TenantDep, service: ServiceDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    status, payload = await service.create(tenant_id, body, idempotency_key)
    return JSONResponse(payload, status_code=status)


@router.post(
    "/v1/memories/batch",
    status_code=201,
    response_model=BatchResult,
    summary="Store up to 1,000 memories in one transaction.",
)
async def create_batch(body: BatchCreate, tenant_id: TenantDep, service: ServiceDep) -> dict[str, Any]:
    return await service.create_batch(tenant_id, body.items)


@router.post(
    "/v1/memories/ingest",
    status_code=201,
    response_model=IngestResult,
    summary="Ingest a document (txt, md, html, pdf, docx): every chunk becomes a memory.",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "layer": {"type": "string", "enum": [layer.value for layer in Layer]},
                            "tags": {"type": "string", "description": "comma-separated"},
                            "subject": {"type": "string"},
                        },
                    }
                },
                "application/json": {"schema": IngestText.model_json_schema()},
            }
        }
    },
)
async def ingest_document(
    request: Request, tenant_id: TenantDep, service: ServiceDep, state: StateDep
) -> JSONResponse:
    limit: int = state.get("max_ingest_bytes")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        ingest_request = await _from_multipart(request, limit)
    elif content_type.startswith("application/json"):
        try:
            body = IngestText.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        data = body.text.encode()
        ingest_request = IngestRequest(
            data, body.filename, None, body.layer, body.tags, body.metadata, body.subject
        )
    else:
        raise ProblemError(
            415,
            "Send multipart/form-data with a file, or JSON {text, filename}.",
            slug="unsupported-media-type",
        )
    if len(ingest_request.data) > limit:
        raise ProblemError(
            413, f"The document exceeds the limit of {limit} bytes.", slug="document-too-large"
        )
    result = await ingest(service, tenant_id, ingest_request)
    return JSONResponse(result, status_code=201)


async def _from_multipart(request: Request, limit: int) -> IngestRequest:
    # The context manager closes the spooled upload files whatever happens.
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, StarletteUploadFile):
            raise ProblemError(422, "The form needs a 'file' part.", slug="validation-error")
        data = await upload.read(limit + 1)
        filename, content_type = upload.filename or "upload", upload.content_type
        fields = {name: str(form.get(name) or "") for name in ("layer", "tags", "subject", "metadata")}
    if errors := text_errors(fields, "body"):
        raise RequestValidationError(errors)
    try:
        layer = Layer(fields["layer"] or Layer.SEMANTIC.value)
    except ValueError as exc:
        raise ProblemError(422, "layer must be one of " + ", ".join(item.value for item in Layer)) from exc
    tags = [t.strip() for t in fields["tags"].split(",") if t.strip()]
    try:
        metadata = json.loads(fields["metadata"] or "{}")
    except ValueError as exc:
        raise ProblemError(422, "metadata must be a JSON object") from exc
    if not isinstance(metadata, dict):
        raise ProblemError(422, "metadata must be a JSON object")
    if errors := text_errors({"metadata": metadata}, "body"):
        raise RequestValidationError(errors)
    return IngestRequest(data, filename, content_type, layer, tags, metadata, fields["subject"] or None)


@router.get("/v1/memories", response_model=MemoryPage, summary="List memories, newest first.")
async def list_memories(
    tenant_id: TenantDep,
    service: ServiceDep,
    layer: Annotated[list[Layer] | None, Query()] = None,
    tags: Annotated[list[str] | None, Query(alias="tags", max_length=20)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    metadata: Annotated[list[MetadataFilter] | None, Query(description="key=value, repeatable")] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    filters = Filters(
        layers=[item.value for item in layer] if layer else None,
        tags=tags,
        metadata=metadata_filters(metadata) if metadata else None,
        since=since,
        until=until,
        subject=subject,
    )
    items, next_cursor = await service.page(tenant_id, filters, cursor, limit)
    return {"items": items, "next_cursor": next_cursor}


@router.delete("/v1/memories", response_model=EraseResult, summary="Erase everything about a subject.")
async def erase_subject(
    tenant_id: TenantDep,
    service: ServiceDep,
    subject: Annotated[str, Query(min_length=1, max_length=200)],
    actor: Annotated[str | None, Header(alias=ACTOR_HEADER, include_in_schema=False)] = None,
) -> dict[str, Any]:
    """Erase the subject's memories and documents and what was derived from them; count it all."""
    return await service.erase_subject(tenant_id, subject, actor_from_header(actor) if actor else None)


@router.get("/v1/memories/{memory_id}", response_model=MemoryOut, summary="Read one memory.")
async def get_memory(memory_id: uuid.UUID, tenant_id: TenantDep, service: ServiceDep) -> dict[str, Any]:
    return await service.get(tenant_id, memory_id)


@router.patch("/v1/memories/{memory_id}", response_model=MemoryOut, summary="Change a memory.")
async def patch_memory(
    memory_id: uuid.UUID, body: MemoryPatch, tenant_id: TenantDep, service: ServiceDep
) -> dict[str, Any]:
    return await service.patch(tenant_id, memory_id, body)


@router.delete("/v1/memories/{memory_id}", status_code=204, summary="Delete a memory.")
async def delete_memory(memory_id: uuid.UUID, tenant_id: TenantDep, service: ServiceDep) -> Response:
    await service.delete(tenant_id, memory_id)
    return Response(status_code=204)


@router.post(
    "/v1/search/hybrid",
    response_model=SearchResponse,
    tags=["search"],
    summary="Hybrid search: vector + full text, fused with recency and importance.",
)
async def hybrid_search(
    body: HybridSearchRequest, tenant_id: TenantDep, service: ServiceDep
) -> dict[str, Any]:
    return {"results": await service.search(tenant_id, body)}
