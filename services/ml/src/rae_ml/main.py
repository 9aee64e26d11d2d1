"""Composition root of the ml service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.settings import ServiceSettings


class MLSettings(ServiceSettings):
    service_name: str = "ml"


@contextlib.asynccontextmanager
async def _setup(state: ServiceState) -> AsyncIterator[None]:
    async with resources.redis_client(state):
        yield


def create_app(settings: MLSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or MLSettings(),
        title="RAE ml",
        description="Embeddings, LLM generation and extraction; reports tokens and cost of every call.",
        setup=_setup,
    )
