"""Composition root of the memory service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import ClassVar

from fastapi import FastAPI
from pydantic import Field, SecretStr, model_validator
from qdrant_client import AsyncQdrantClient

from rae_common import resources
from rae_common.app import ServiceState, Setup, create_service_app
from rae_common.clients import GraphClient, MlClient, ReflectionClient
from rae_common.events import TOPIC_MEMORY
from rae_common.outbox_api import router as outbox_router
from rae_common.settings import Infrastructure, ServiceSettings, require
from rae_memory.adapters.embeddings import EmbeddingClient
from rae_memory.adapters.repository import MemoryRepository
from rae_memory.adapters.sql import register_vector_codec
from rae_memory.adapters.vectors import DEFAULT_EF_SEARCH, PgVectorIndex, QdrantIndex, VectorIndex
from rae_memory.api import evaluations
from rae_memory.api.routes import router
from rae_memory.erasure import Downstream
from rae_memory.schema import schema_plan
from rae_memory.service import MemoryService

_log = logging.getLogger("rae.memory")

#: QDRANT_URL asking for qdrant-client's in-process store: lost at every restart, slow to filter.
QDRANT_IN_PROCESS = ":memory:"


class MemorySettings(ServiceSettings):
    uses: ClassVar[frozenset[Infrastructure]] = frozenset({"postgres", "kafka", "qdrant"})
    topics: ClassVar[frozenset[str]] = frozenset({TOPIC_MEMORY})
    service_name: str = "memory"
    vector_backend: str = Field(default="pgvector", pattern="^(pgvector|qdrant)$")
    qdrant_collection: str = "rae_memories"
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_dimensions: int = Field(default=384, ge=1)
    hnsw_ef_search: int = Field(default=DEFAULT_EF_SEARCH, ge=1, le=1000)
    recency_half_life_days: float = Field(default=30.0, gt=0)
    search_lexical_pool: int = Field(default=500, ge=10, le=100_000)
    search_common_lexeme_fraction: float = Field(default=0.1, gt=0, le=1)
    ingest_embed_chunk: int = Field(default=128, ge=1, le=1000)
    expiry_sweep_interval_s: float = Field(default=60.0, gt=0)
    max_ingest_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # Key of the subject digest in erasure audit rows; empty: the rows keep no digest.
    erasure_audit_key: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _qdrant_needs_a_store(self) -> MemorySettings:
        # Falling back to the in-process store would lose every vector at the next restart.
        if self.vector_backend == "qdrant" and not self.qdrant_url:
            raise ValueError(
                "VECTOR_BACKEND=qdrant needs QDRANT_URL: the URL of a Qdrant server, or "
                f"QDRANT_URL={QDRANT_IN_PROCESS} for a throwaway in-process store (tests only)"
            )
        return self


@contextlib.asynccontextmanager
async def _vector_index(state: ServiceState, settings: MemorySettings) -> AsyncIterator[VectorIndex]:
    if settings.vector_backend == "pgvector":
        yield PgVectorIndex(ef_search=settings.hnsw_ef_search)
        return
    require(settings, "qdrant")
    in_process = settings.qdrant_url == QDRANT_IN_PROCESS
    client = (
        AsyncQdrantClient(location=QDRANT_IN_PROCESS)
        if in_process
        else AsyncQdrantClient(
            url=settings.qdrant_url, api_key=settings.qdrant_api_key.get_secret_value() or None
        )
    )
    index = QdrantIndex(
        client,
        settings.qdrant_collection,
        settings.embedding_dimensions,
        payload_indexes=not in_process,
    )
    try:
        await index.ensure_collection()
        state.add_check("qdrant", index.ping)
        yield index
    finally:
        await client.close()


async def _sweep_forever(service: MemoryService, interval_s: float) -> None:
    while True:
        try:
            while await service.sweep_expired():
                pass
            # Cached embeddings an erasure could not evict (ml was away) are evicted now.
            while await service.retry_evictions():
                pass
        except Exception:
            _log.warning("expiry sweep failed; retrying", exc_info=True)
        await asyncio.sleep(interval_s)


def _setup_for(settings: MemorySettings) -> Setup:
    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        async with (
            resources.postgres_with_outbox(
                state, schema_plan(), connection_setup=register_vector_codec
            ) as pool,
            _vector_index(state, settings) as vectors,
        ):
            assert state.http is not None
            service = MemoryService(
                pool,
                MemoryRepository(),
                vectors,
                EmbeddingClient(state.http, settings.ml_url, settings.embedding_model),
                state.get("relay").wake,
                recency_half_life=timedelta(days=settings.recency_half_life_days),
                lexical_pool=settings.search_lexical_pool,
                common_lexeme_fraction=settings.search_common_lexeme_fraction,
                embed_chunk=settings.ingest_embed_chunk,
                downstream=Downstream(
                    ReflectionClient(state.http, settings.reflection_url),
                    GraphClient(state.http, settings.graph_url),
                    MlClient(state.http, settings.ml_url),
                    settings.erasure_audit_key.get_secret_value().encode() or None,
                ),
            )
            state.resources["service"] = service
            state.resources["max_ingest_bytes"] = settings.max_ingest_bytes
            sweeper = asyncio.create_task(_sweep_forever(service, settings.expiry_sweep_interval_s))
            try:
                yield
            finally:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper

    return setup


def create_app(settings: MemorySettings | None = None) -> FastAPI:
    settings = settings or MemorySettings()
    return create_service_app(
        settings,
        title="RAE memory",
        description="Memories, documents and hybrid search.",
        routers=[router, evaluations.router, outbox_router],
        setup=_setup_for(settings),
    )
