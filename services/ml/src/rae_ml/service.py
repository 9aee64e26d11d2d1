"""Embedding use case: cache lookup, batched encoding off the event loop, cache write-back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from rae_ml.domain.embeddings import (
    CacheUnavailable,
    Embedder,
    ModelInfo,
    ModelRegistry,
    VectorCache,
    batched,
    cache_key,
)

__all__ = ["Embedding", "EmbeddingMetrics", "EmbeddingService", "ModelUnavailable"]

_log = logging.getLogger("rae.ml.embeddings")


class ModelUnavailable(RuntimeError):
    """The model failed to load; the service cannot embed with it."""


@dataclass(frozen=True, slots=True)
class Embedding:
    model: ModelInfo
    vectors: list[list[float]]
    cached: int
    prompt_tokens: int


class EmbeddingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.embeddings = Counter(
            "rae_embeddings",
            "Vectors answered, by model and whether the cache had them",
            ["model", "cache"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "rae_embedding_batch_seconds",
            "Time the model took to encode one batch",
            ["model"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        )


class EmbeddingService:
    """Embeds texts with the registered models, loaded in worker threads at start-up."""

    def __init__(
        self,
        registry: ModelRegistry,
        cache: VectorCache,
        metrics: EmbeddingMetrics,
        *,
        batch_size: int,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.metrics = metrics
        self.batch_size = batch_size
        self._loading: dict[str, asyncio.Task[Embedder]] = {}
        # Two cores: one encode at a time uses them fully; parallel encodes would only thrash.
        self._encode_lock = asyncio.Lock()

    def start_loading(self) -> None:
        for name in self.registry.names:
            task = asyncio.create_task(asyncio.to_thread(self.registry.build, name), name=f"load {name}")
            task.add_done_callback(_log_load_result)
            self._loading[name] = task

    async def check_loaded(self) -> None:
        """Readiness probe: fails while a model is loading or when one failed to load."""
        for name, task in self._loading.items():
            if not task.done():
                raise RuntimeError(f"{name} is loading")
            if task.cancelled() or task.exception() is not None:
                raise RuntimeError(f"{name} failed to load: {task.exception()!r}")

    async def close(self) -> None:
        # A loading thread cannot be interrupted: wait for it so nothing outlives the app.
        for task in self._loading.values():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task

    async def embedder(self, name: str) -> Embedder:
        """The loaded model, waiting for it while it loads."""
        try:
            # Shielded: a caller that goes away must not cancel the shared load.
            return await asyncio.shield(self._loading[name])
        except Exception as exc:
            raise ModelUnavailable(f"embedding model {name} is not available: {exc}") from exc

    async def embed(self, texts: Sequence[str], model: str | None = None) -> Embedding:
        """Vectors for `texts`, in order; cached vectors are reused, the rest encoded and cached.

        `prompt_tokens` counts the texts the model encoded: a cached vector costs nothing.
        Raises UnknownModel, ModelUnavailable.
        """
        info = self.registry.resolve(model)
        embedder = await self.embedder(info.name)
        keys = [cache_key(info.name, text) for text in texts]
        cache_up = True
        try:
            found = await self.cache.get_many(keys)
        except CacheUnavailable as exc:
            _log.warning("embedding cache unavailable, computing every vector: %s", exc)
            found, cache_up = [None] * len(keys), False
        vectors = [v if v is not None and len(v) == info.dimensions else None for v in found]
        cached = sum(v is not None for v in vectors)

        # Each distinct missing text once, in first-seen order.
        missing: dict[str, str] = {}
        for key, text, vector in zip(keys, texts, vectors, strict=True):
            if vector is None:
                missing.setdefault(key, text)
        computed: dict[str, list[float]] = {}
        tokens = 0
        for batch in batched(list(missing), self.batch_size):
            batch_vectors, batch_tokens = await self._encode(embedder, [missing[k] for k in batch])
            computed.update(zip(batch, batch_vectors, strict=True))
            tokens += sum(batch_tokens)
        if computed and cache_up:
            try:
                await self.cache.put_many(computed)
            except CacheUnavailable as exc:
                _log.warning("embedding cache unavailable, vectors not cached: %s", exc)

        self.metrics.embeddings.labels(info.name, "hit").inc(cached)
        self.metrics.embeddings.labels(info.name, "miss").inc(len(texts) - cached)
        return Embedding(
            model=info,
            vectors=[v if v is not None else computed[k] for k, v in zip(keys, vectors, strict=True)],
            cached=cached,
            prompt_tokens=tokens,
        )

    async def _encode(self, embedder: Embedder, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        async with self._encode_lock:
            started = time.perf_counter()
            result = await asyncio.to_thread(_encode_and_count, embedder, texts)
            self.metrics.batch_seconds.labels(embedder.name).observe(time.perf_counter() - started)
        return result


def _encode_and_count(embedder: Embedder, texts: list[str]) -> tuple[list[list[float]], list[int]]:
    return embedder.encode(texts), embedder.count_tokens(texts)


def _log_load_result(task: asyncio.Task[Embedder]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        _log.error("%s failed", task.get_name(), exc_info=exc)
    else:
        model = task.result()
        _log.info("embedding model %s loaded (%d dimensions)", model.name, model.dimensions)
