"""Memory routes (thin: validate, call the repository, map to responses)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_common.errors import ProblemError
from rae_memory.adapters.repository import MemoryRepository
from rae_memory.domain.model import Layer, content_hash

router = APIRouter(prefix="/v1/memories", tags=["memories"])


def get_repository(state: StateDep) -> MemoryRepository:
    repo: MemoryRepository = state.get("repository")
    return repo


RepositoryDep = Annotated[MemoryRepository, Depends(get_repository)]


class MemoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=100_000)
    layer: Layer = Layer.EPISODIC
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(default=None, max_length=500)
    importance: float = Field(default=0.5, ge=0, le=1)


class MemoryOut(BaseModel):
    id: uuid.UUID
    tenant_id: str
    content: str
    layer: Layer
    tags: list[str]
    metadata: dict[str, Any]
    source: str | None
    importance: float
    content_hash: str
    created_at: datetime
    expires_at: datetime | None


@router.post("", status_code=201, response_model=MemoryOut, summary="Store a memory.")
async def create_memory(
    body: MemoryIn, tenant_id: TenantDep, repo: RepositoryDep, state: StateDep, response: Response
) -> dict[str, Any]:
    if not body.content.strip():
        raise ProblemError(422, "content must not be blank", slug="validation-error")
    row, created = await repo.create(
        tenant_id,
        content=body.content,
        layer=body.layer.value,
        tags=sorted(set(body.tags)),
        metadata=body.metadata,
        source=body.source,
        importance=body.importance,
        content_hash=content_hash(body.content),
    )
    if created:
        state.get("relay").wake()
    else:
        response.status_code = 200
    return row


@router.get("/{memory_id}", response_model=MemoryOut, summary="Read one memory.")
async def get_memory(memory_id: uuid.UUID, tenant_id: TenantDep, repo: RepositoryDep) -> dict[str, Any]:
    row = await repo.get(tenant_id, memory_id)
    if row is None:
        raise ProblemError(404, f"memory {memory_id} not found", slug="memory-not-found")
    return row
