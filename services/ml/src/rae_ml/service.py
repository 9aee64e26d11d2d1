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
    RemoteEmbedder,
    UnknownModel,
    VectorCache,
    batched,
    cache_key,
    digest_cache_key,
)
from rae_ml.domain.extractive import TokenCounter

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
    estimated: bool = False


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
    """Embeds texts with the registered local models, loaded in worker threads at start-up,
    and with the models of remote providers."""

    def __init__(
        self,
        registry: ModelRegistry,
        cache: VectorCache,
        metrics: EmbeddingMetrics,
        *,
        batch_size: int,
        remote: Sequence[RemoteEmbedder] = (),
        counter: TokenCounter | None = None,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.metrics = metrics
        self.batch_size = batch_size
        self.remote = {r.info.name: r for r in remote}
        clash = set(self.remote) & set(registry.names)
        if clash or len(self.remote) < len(remote):
            raise ValueError("an embedding model name is offered twice; embedding model names must be unique")
        if self.remote and counter is None:
            raise ValueError("remote embedding models need a token counter for their estimates")
        self.counter = counter
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

    @property
    def infos(self) -> list[ModelInfo]:
        return [*self.registry.infos, *(r.info for r in self.remote.values())]

    def resolve(self, model: str | None) -> ModelInfo:
        """The model called `model` or `<provider>/<model>` (the default one for None).
        Raises UnknownModel."""
        if model is not None:
            remote = self.remote.get(model) or self.remote.get(model.partition("/")[2])
            if remote is not None and model in (
                remote.info.name,
                f"{remote.info.provider}/{remote.info.name}",
            ):
                return remote.info
        try:
            return self.registry.resolve(model)
        except UnknownModel as exc:
            raise UnknownModel(exc.name, [*exc.known, *self.remote]) from None

    async def embed(self, texts: Sequence[str], model: str | None = None) -> Embedding:
        """Vectors for `texts`, in order; cached vectors are reused, the rest encoded and cached.

        `prompt_tokens` counts the texts the model encoded: a cached vector costs nothing.
        Raises UnknownModel, ModelUnavailable, and for remote models ProviderError,
        ProviderTimeout, ProviderUnavailable.
        """
        info = self.resolve(model)
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
        estimated = False
        remote = self.remote.get(info.name)
        embedder = None if remote is not None else await self.embedder(info.name)
        for batch in batched(list(missing), self.batch_size):
            batch_texts = [missing[k] for k in batch]
            if remote is not None:
                batch_vectors, batch_tokens, batch_estimated = await self._encode_remote(remote, batch_texts)
                estimated = estimated or batch_estimated
            else:
                assert embedder is not None
                batch_vectors, counts = await self._encode(embedder, batch_texts)
                batch_tokens = sum(counts)
            computed.update(zip(batch, batch_vectors, strict=True))
            tokens += batch_tokens
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
            estimated=estimated,
        )

    async def evict(self, digests: Sequence[str]) -> int:
        """Forget the cached vectors, by every model offered, of the texts whose UTF-8 SHA-256
        (hex) are `digests` (an erasure of the memories they were); how many there were.
        Raises CacheUnavailable: then nothing is known removed."""
        keys = sorted({digest_cache_key(info.name, d) for info in self.infos for d in digests})
        return await self.cache.delete_many(keys)

    async def _encode_remote(
        self, remote: RemoteEmbedder, texts: list[str]
    ) -> tuple[list[list[float]], int, bool]:
        result = await remote.embed(texts)
        if result.prompt_tokens is not None:
            return result.vectors, result.prompt_tokens, False
        assert self.counter is not None
        return result.vectors, sum(await asyncio.to_thread(self.counter.count, texts)), True

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
