"""Composition root of the reflection service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.outbox import shared_migrations
from rae_common.settings import ServiceSettings

SCHEMA = "reflection"


class ReflectionSettings(ServiceSettings):
    service_name: str = "reflection"


@contextlib.asynccontextmanager
async def _setup(state: ServiceState) -> AsyncIterator[None]:
    async with resources.postgres_with_outbox(state, SCHEMA, shared_migrations("inbox")):
        yield


def create_app(settings: ReflectionSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or ReflectionSettings(),
        title="RAE reflection",
        description="Reflections over groups of memories, with provenance.",
        setup=_setup,
    )
