"""Composition root of the graph service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.settings import ServiceSettings


class GraphSettings(ServiceSettings):
    service_name: str = "graph"


@contextlib.asynccontextmanager
async def _setup(state: ServiceState) -> AsyncIterator[None]:
    async with resources.neo4j_driver(state), resources.kafka_publisher(state):
        yield


def create_app(settings: GraphSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or GraphSettings(),
        title="RAE graph",
        description="Knowledge graph built from memories; GraphRAG queries.",
        setup=_setup,
    )
