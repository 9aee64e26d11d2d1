"""Composition root of the memory service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.db import load_migrations
from rae_common.settings import ServiceSettings
from rae_memory.adapters.repository import SCHEMA, MemoryRepository
from rae_memory.api.routes import router


class MemorySettings(ServiceSettings):
    service_name: str = "memory"


@contextlib.asynccontextmanager
async def _setup(state: ServiceState) -> AsyncIterator[None]:
    async with resources.postgres_with_outbox(state, SCHEMA, load_migrations("rae_memory")) as pool:
        state.resources["repository"] = MemoryRepository(pool)
        yield


def create_app(settings: MemorySettings | None = None) -> FastAPI:
    return create_service_app(
        settings or MemorySettings(),
        title="RAE memory",
        description="Memories, documents and hybrid search.",
        routers=[router],
        setup=_setup,
    )
