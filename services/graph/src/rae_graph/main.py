"""Composition root of the graph service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

from fastapi import FastAPI
from pydantic import Field

from rae_common import resources
from rae_common.app import ServiceState, Setup, create_service_app
from rae_common.events import TOPIC_DLQ, TOPIC_GRAPH, TOPIC_MEMORY
from rae_common.outbox_api import router as outbox_router
from rae_common.settings import Infrastructure, ServiceSettings
from rae_graph.adapters.clients import MemoryClient, MlClient
from rae_graph.adapters.store import GraphStore
from rae_graph.api.routes import router
from rae_graph.consumers import CONSUMER, memory_handler
from rae_graph.schema import schema_plan
from rae_graph.service import GraphService, Tuning


class GraphSettings(ServiceSettings):
    uses: ClassVar[frozenset[Infrastructure]] = frozenset({"postgres", "kafka", "neo4j"})
    topics: ClassVar[frozenset[str]] = frozenset({TOPIC_MEMORY, TOPIC_GRAPH, TOPIC_DLQ})
    service_name: str = "graph"
    graph_similarity_threshold: float = Field(default=0.93, gt=0, le=1)
    graph_similarity_margin: float = Field(default=0.02, ge=0, le=1)
    graph_resolution_candidates: int = Field(default=500, ge=0)
    graph_functional_relations: str = Field(
        default="WORKS_AT,LIVES_IN,LEADS,REPORTS_TO,BASED_IN,MARRIED_TO",
        pattern=r"^\s*([A-Z][A-Z0-9_]*\s*(,\s*|$))*$",
    )
    graph_max_nodes: int = Field(default=200, ge=1, le=5000)
    graph_search_graph_weight: float = Field(default=1.0, ge=0, le=10)
    graph_search_hybrid_weight: float = Field(default=1.0, ge=0, le=10)
    graph_extract_model: str | None = None
    graph_judge_model: str | None = None


def _setup_for(settings: GraphSettings) -> Setup:
    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        async with (
            resources.postgres_with_outbox(state, schema_plan()) as pool,
            resources.neo4j_driver(state) as driver,
        ):
            store = GraphStore(driver, settings.neo4j_database)
            await store.ensure_schema()
            assert state.http is not None
            service = GraphService(
                pool,
                store,
                MlClient(state.http, settings.ml_url, extract_model=settings.graph_extract_model),
                MemoryClient(state.http, settings.memory_url),
                Tuning(
                    similarity_threshold=settings.graph_similarity_threshold,
                    similarity_margin=settings.graph_similarity_margin,
                    resolution_candidates=settings.graph_resolution_candidates,
                    functional_relations=frozenset(
                        r.strip() for r in settings.graph_functional_relations.split(",") if r.strip()
                    ),
                    max_nodes=settings.graph_max_nodes,
                    graph_weight=settings.graph_search_graph_weight,
                    hybrid_weight=settings.graph_search_hybrid_weight,
                    judge_model=settings.graph_judge_model or None,
                ),
                state.get("relay").wake,
            )
            state.resources["service"] = service
            async with resources.kafka_consumer(
                state,
                group_id=CONSUMER,
                topics=[TOPIC_MEMORY],
                handler=memory_handler(pool, service),
                dlq=state.get("publisher"),
            ):
                yield

    return setup


def create_app(settings: GraphSettings | None = None) -> FastAPI:
    settings = settings or GraphSettings()
    return create_service_app(
        settings,
        title="RAE graph",
        description="Knowledge graph built from memories; GraphRAG queries.",
        routers=[router, outbox_router],
        setup=_setup_for(settings),
    )
