"""Composition root of the gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.settings import ServiceSettings
from rae_gateway.api.routes import router

SCHEMA = "gateway"


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"


@contextlib.asynccontextmanager
async def _setup(state: ServiceState) -> AsyncIterator[None]:
    async with resources.postgres(state, SCHEMA, []), resources.redis_client(state):
        yield


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    return create_service_app(
        settings or GatewaySettings(),
        title="RAE gateway",
        description="The public API of RAE: long-term memory for LLM agents.",
        routers=[router],
        setup=_setup,
    )
