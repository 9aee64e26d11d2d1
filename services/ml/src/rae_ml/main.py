"""Composition root of the ml service."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

from fastapi import FastAPI
from pydantic import Field

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.settings import ServiceSettings
from rae_ml.adapters.cache import RedisVectorCache
from rae_ml.adapters.sentence_transformer import MINILM, load_local_embedder
from rae_ml.api.routes import router
from rae_ml.domain.embeddings import ModelRegistry
from rae_ml.service import EmbeddingMetrics, EmbeddingService


class MLSettings(ServiceSettings):
    service_name: str = "ml"

    embedding_model: str = MINILM.name
    embedding_cache_ttl_s: int = Field(default=30 * 86400, ge=1)
    embedding_batch_size: int = Field(default=64, ge=1, le=2048)
    ml_torch_threads: int = Field(default=2, ge=1)


def default_models(settings: MLSettings) -> ModelRegistry:
    """Every embedding model this service offers, by name."""
    registry = ModelRegistry(default=settings.embedding_model)
    registry.register(MINILM, functools.partial(load_local_embedder, settings.ml_torch_threads))
    return registry


def create_app(settings: MLSettings | None = None, *, models: ModelRegistry | None = None) -> FastAPI:
    """`models` replaces the default registry (tests hand in a model loaded once per session)."""
    settings = settings or MLSettings()
    registry = models or default_models(settings)
    registry.resolve(None)  # an unknown default model is a configuration error: fail now

    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        async with resources.redis_client(state) as redis:
            service = EmbeddingService(
                registry,
                RedisVectorCache(redis, settings.embedding_cache_ttl_s),
                metrics,
                batch_size=settings.embedding_batch_size,
            )
            service.start_loading()
            state.add_check("model", service.check_loaded)
            state.resources["embeddings"] = service
            try:
                yield
            finally:
                await service.close()

    app = create_service_app(
        settings,
        title="RAE ml",
        description="Embeddings, LLM generation and extraction; reports tokens and cost of every call.",
        routers=[router],
        setup=setup,
    )
    # Registered with the app's registry once, not at each run of its lifespan.
    metrics = EmbeddingMetrics(app.state.rae.metrics.registry)
    return app
