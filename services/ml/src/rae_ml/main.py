"""Composition root of the ml service."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import ClassVar, Literal

import httpx
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.events import TOPIC_ML
from rae_common.outbox_api import router as outbox_router
from rae_common.settings import Infrastructure, ServiceSettings
from rae_common.telemetry import instrument_httpx
from rae_ml.adapters.cache import RedisVectorCache
from rae_ml.adapters.local_chat import LocalChatProvider
from rae_ml.adapters.openai_compat import OpenAICompatibleClient, OpenAIEmbedder, ProviderMetrics, RetryPolicy
from rae_ml.adapters.sentence_transformer import MINILM, Backend, check_installed, load_local_embedder
from rae_ml.adapters.tokenizer import load_minilm_counter
from rae_ml.api.routes import router
from rae_ml.domain.embeddings import ModelInfo, ModelRegistry
from rae_ml.domain.generation import LOCAL_MODEL, LOCAL_PROVIDER, GenerationCatalog
from rae_ml.domain.pricing import Price, load_pricing
from rae_ml.domain.resilience import Backoff, CircuitBreaker
from rae_ml.extraction_service import ExtractionService
from rae_ml.generation_service import GenerationService
from rae_ml.schema import SCHEMA, schema_plan
from rae_ml.service import EmbeddingMetrics, EmbeddingService
from rae_ml.usage import UsageLedger, UsageMetrics


class EmbeddingModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    dimensions: int = Field(ge=1, le=65_536)
    max_tokens: int = Field(default=8191, ge=1)


class ProviderConfig(BaseModel):
    """One entry of `ML_PROVIDERS`: an OpenAI-compatible API and the models it offers."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    kind: Literal["openai"] = "openai"
    base_url: str = Field(pattern=r"^https?://\S+$", description="Up to and including `/v1`.")
    api_key: SecretStr | None = None
    models: list[str] = Field(default_factory=list, description="Generation (chat) models.")
    embedding_models: list[EmbeddingModelConfig] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _not_local(cls, value: str) -> str:
        if value == LOCAL_PROVIDER:
            raise ValueError("the name `local` belongs to the built-in offline provider")
        return value


class MLSettings(ServiceSettings):
    uses: ClassVar[frozenset[Infrastructure]] = frozenset({"postgres", "kafka", "redis"})
    topics: ClassVar[frozenset[str]] = frozenset({TOPIC_ML})
    service_name: str = "ml"

    embedding_model: str = MINILM.name
    embedding_cache_ttl_s: int = Field(default=30 * 86400, ge=1)
    embedding_batch_size: int = Field(default=64, ge=1, le=2048)
    ml_torch_threads: int = Field(default=2, ge=1)
    embedding_backend: Backend = "onnx"
    embedding_onnx_cache_dir: str | None = None

    ml_providers: list[ProviderConfig] = Field(default_factory=list)
    # Provider name -> API key, for keys kept apart from ML_PROVIDERS (a Kubernetes Secret): JSON
    # such as {"openai": "sk-..."}. A key inside ML_PROVIDERS itself wins.
    ml_provider_api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    ml_default_generate_model: str = LOCAL_MODEL
    ml_extract_model: str | None = None
    ml_provider_timeout_s: float = Field(default=60.0, gt=0)
    ml_provider_max_retries: int = Field(default=2, ge=0, le=10)
    ml_provider_backoff_base_s: float = Field(default=0.5, gt=0)
    ml_provider_backoff_max_s: float = Field(default=8.0, gt=0)
    ml_breaker_failures: int = Field(default=5, ge=1)
    ml_breaker_reset_s: float = Field(default=30.0, gt=0)
    ml_pricing_file: str | None = None
    ml_price_overrides: dict[str, Price] = Field(default_factory=dict)
    # Embedding usage summed per tenant and model for this long, then one llm.usage event;
    # 0: one event per call (see rae_ml.domain.rollup for why).
    usage_rollup_window_s: float = Field(default=1.0, ge=0, le=60)

    @model_validator(mode="after")
    def _unique_providers(self) -> MLSettings:
        names = [p.name for p in self.ml_providers]
        if len(set(names)) != len(names):
            raise ValueError("ML_PROVIDERS names must be unique")
        unknown = sorted(set(self.ml_provider_api_keys) - set(names))
        if unknown:
            raise ValueError(
                f"ML_PROVIDER_API_KEYS names providers that ML_PROVIDERS does not have: {unknown}"
            )
        return self

    def provider_api_key(self, provider: ProviderConfig) -> str | None:
        key = provider.api_key or self.ml_provider_api_keys.get(provider.name)
        return key.get_secret_value() if key is not None else None


def default_models(settings: MLSettings) -> ModelRegistry:
    """Every local embedding model this service offers, by name."""
    registry = ModelRegistry(default=settings.embedding_model)
    cache_dir = settings.embedding_onnx_cache_dir
    load = functools.partial(
        load_local_embedder,
        settings.ml_torch_threads,
        backend=settings.embedding_backend,
        cache_dir=Path(cache_dir) if cache_dir else None,
    )
    registry.register(MINILM, load)
    return registry


def generation_catalog(providers: Sequence[ProviderConfig]) -> GenerationCatalog:
    catalog = GenerationCatalog()
    catalog.add(LOCAL_PROVIDER, LOCAL_MODEL)
    for provider in providers:
        for model in provider.models:
            catalog.add(provider.name, model)
    return catalog


def _remote_embedding_infos(settings: MLSettings) -> list[ModelInfo]:
    return [
        ModelInfo(name=m.name, dimensions=m.dimensions, provider=p.name, max_tokens=m.max_tokens)
        for p in settings.ml_providers
        for m in p.embedding_models
    ]


@contextlib.asynccontextmanager
async def _provider_clients(
    state: ServiceState, settings: MLSettings, metrics: ProviderMetrics
) -> AsyncIterator[dict[str, OpenAICompatibleClient]]:
    """One pooled HTTP client, breaker and retry policy per configured provider."""
    timeout = settings.ml_provider_timeout_s
    policy = RetryPolicy(
        settings.ml_provider_max_retries,
        Backoff(settings.ml_provider_backoff_base_s, settings.ml_provider_backoff_max_s),
    )
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, OpenAICompatibleClient] = {}
        for provider in settings.ml_providers:
            api_key = settings.provider_api_key(provider)
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=provider.base_url,
                    headers=headers,
                    timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                )
            )
            instrument_httpx(http, state.tracer_provider)
            breaker = CircuitBreaker(settings.ml_breaker_failures, settings.ml_breaker_reset_s)
            clients[provider.name] = OpenAICompatibleClient(provider.name, http, breaker, policy, metrics)
        yield clients


def create_app(
    settings: MLSettings | None = None,
    *,
    models: ModelRegistry | None = None,
    span_processors: tuple[SpanProcessor, ...] = (),
) -> FastAPI:
    """`models` replaces the default registry (tests hand in a model loaded once per session);
    `span_processors` see every span (tests export them in memory)."""
    settings = settings or MLSettings()
    cache_dir = Path(settings.embedding_onnx_cache_dir) if settings.embedding_onnx_cache_dir else None
    if models is None:
        # A model that cannot load whatever it tries (no torch, no exported graph) stops the
        # start-up here with the reason, rather than leaving a pod that is never ready.
        check_installed(MINILM.name, settings.embedding_backend, cache_dir)
    registry = models or default_models(settings)
    # Configuration errors fail now, not at the first request.
    registry.resolve(None)
    remote_infos = _remote_embedding_infos(settings)
    names = [*registry.names, *(info.name for info in remote_infos)]
    if len(set(names)) != len(names):
        raise ValueError(f"embedding model names must be unique across providers: {names}")
    catalog = generation_catalog(settings.ml_providers)
    catalog.resolve(settings.ml_default_generate_model)
    extract_model = settings.ml_extract_model or settings.ml_default_generate_model
    catalog.resolve(extract_model)
    prices = load_pricing(settings.ml_pricing_file, settings.ml_price_overrides)

    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        async with (
            resources.redis_client(state) as redis,
            resources.postgres_with_outbox(state, schema_plan()) as pool,
            _provider_clients(state, settings, provider_metrics) as clients,
        ):
            counter = await asyncio.to_thread(load_minilm_counter, cache_dir=cache_dir)
            ledger = UsageLedger(
                pool,
                SCHEMA,
                state.get("relay").wake,
                prices,
                usage_metrics,
                trace.get_tracer("rae.ml", tracer_provider=state.tracer_provider),
                producer=settings.service_name,
                rollup_window_s=settings.usage_rollup_window_s,
            )
            remote = [OpenAIEmbedder(clients[info.provider], info) for info in remote_infos]
            embeddings = EmbeddingService(
                registry,
                RedisVectorCache(redis, settings.embedding_cache_ttl_s),
                embedding_metrics,
                batch_size=settings.embedding_batch_size,
                remote=remote,
                counter=counter,
            )
            generation = GenerationService(
                catalog,
                {LOCAL_PROVIDER: LocalChatProvider(counter), **clients},
                ledger,
                counter,
                default_model=settings.ml_default_generate_model,
            )
            embeddings.start_loading()
            state.add_check("model", embeddings.check_loaded)
            state.resources.update(
                embeddings=embeddings,
                generation=generation,
                extraction=ExtractionService(generation, default_model=extract_model),
                ledger=ledger,
            )
            try:
                async with ledger.rolling_up():
                    yield
            finally:
                await embeddings.close()

    app = create_service_app(
        settings,
        title="RAE ml",
        description="Embeddings, LLM generation and extraction; reports tokens and cost of every call.",
        routers=[router, outbox_router],
        setup=setup,
        span_processors=span_processors,
    )
    # Registered with the app's registry once, not at each run of its lifespan.
    metrics_registry = app.state.rae.metrics.registry
    embedding_metrics = EmbeddingMetrics(metrics_registry)
    provider_metrics = ProviderMetrics(metrics_registry)
    usage_metrics = UsageMetrics(metrics_registry)
    return app
