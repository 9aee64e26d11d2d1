"""Composition root of the reflection service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

from fastapi import FastAPI
from pydantic import Field

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.events import TOPIC_DLQ, TOPIC_MEMORY, TOPIC_REFLECTION
from rae_common.outbox_api import router as outbox_router
from rae_common.settings import Infrastructure, ServiceSettings
from rae_reflection.adapters.clients import MemoryClient, MlClient
from rae_reflection.api.routes import router
from rae_reflection.consumers import request_handler
from rae_reflection.domain.clustering import GroupLimits
from rae_reflection.schema import schema_plan
from rae_reflection.service import CONSUMER, ReflectionService, Tuning


class ReflectionSettings(ServiceSettings):
    uses: ClassVar[frozenset[Infrastructure]] = frozenset({"postgres", "kafka"})
    topics: ClassVar[frozenset[str]] = frozenset({TOPIC_REFLECTION, TOPIC_MEMORY, TOPIC_DLQ})
    service_name: str = "reflection"
    reflection_max_memories: int = Field(default=500, ge=1, le=2048)
    reflection_similarity: float = Field(default=0.5, ge=-1, le=1)
    reflection_min_group_size: int = Field(default=2, ge=1)
    reflection_max_group_size: int = Field(default=20, ge=1, le=200)
    reflection_max_groups: int = Field(default=10, ge=1, le=100)
    reflection_model: str | None = None
    reflection_max_tokens: int = Field(default=256, ge=1, le=32_768)


def _tuning(settings: ReflectionSettings) -> Tuning:
    return Tuning(
        limits=GroupLimits(
            threshold=settings.reflection_similarity,
            min_size=settings.reflection_min_group_size,
            max_size=settings.reflection_max_group_size,
            max_groups=settings.reflection_max_groups,
        ),
        max_memories=settings.reflection_max_memories,
        model=settings.reflection_model,
        max_tokens=settings.reflection_max_tokens,
    )


def create_app(settings: ReflectionSettings | None = None) -> FastAPI:
    settings = settings or ReflectionSettings()

    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        async with resources.postgres_with_outbox(state, schema_plan()) as pool:
            assert state.http is not None
            service = ReflectionService(
                pool,
                MemoryClient(state.http, settings.memory_url),
                MlClient(state.http, settings.ml_url),
                state.get("relay").wake,
                _tuning(settings),
            )
            state.resources["service"] = service
            async with resources.kafka_consumer(
                state,
                group_id=CONSUMER,
                # The memory topic: a deleted memory takes the reflections citing it away.
                topics=[TOPIC_REFLECTION, TOPIC_MEMORY],
                handler=request_handler(service),
                dlq=state.get("publisher"),
            ):
                yield

    return create_service_app(
        settings,
        title="RAE reflection",
        description="Reflections over groups of memories, with provenance.",
        routers=[router, outbox_router],
        setup=setup,
    )
