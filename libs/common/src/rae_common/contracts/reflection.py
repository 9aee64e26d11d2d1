"""The reflection API contract (reflection service routes, exposed as-is by the gateway)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rae_common.contracts.memory import MemoryOut

__all__ = [
    "ReflectionDetail",
    "ReflectionListQuery",
    "ReflectionOut",
    "ReflectionPage",
    "TriggerAccepted",
    "TriggerRequest",
]


class ReflectionOut(BaseModel):
    id: uuid.UUID = Field(description="The id of the `reflective` memory holding the reflection.")
    tenant_id: str
    content: str
    source_ids: list[uuid.UUID] = Field(description="The memories the reflection was written from.")
    model: str = Field(description="The generation model that wrote it.")
    prompt_version: str
    request_event_id: uuid.UUID = Field(description="The `reflection.requested` event it answered.")
    created_at: datetime


class ReflectionPage(BaseModel):
    items: list[ReflectionOut]
    next_cursor: str | None


class ReflectionDetail(ReflectionOut):
    sources: list[MemoryOut] = Field(
        description="The source memories that still exist (deleted ones are left out)."
    )


class ReflectionListQuery(BaseModel):
    """Filters of `GET /v1/reflections`."""

    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=200, description="Page size.")


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(
        default=None,
        description="Reflect on memories from this time; since the tenant's last reflection when null.",
    )
    reason: Annotated[str, Field(min_length=1, max_length=200)] = "manual"


class TriggerAccepted(BaseModel):
    request_id: uuid.UUID = Field(description="The id of the `reflection.requested` event emitted.")
    status: str = "accepted"
