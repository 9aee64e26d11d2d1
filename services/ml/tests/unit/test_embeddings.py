"""Pure embedding logic and the embedding use case, with fakes of the model and the cache."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import pytest
from prometheus_client import CollectorRegistry

from rae_ml.domain.embeddings import (
    CacheUnavailable,
    ModelInfo,
    ModelRegistry,
    RemoteVectors,
    UnknownModel,
    batched,
    cache_key,
)
from rae_ml.service import EmbeddingMetrics, EmbeddingService

FAKE = ModelInfo(name="fake-4d", dimensions=4, provider="local", max_tokens=8)


class FakeEmbedder:
    """Deterministic unit vectors derived from the text; records every batch it was given."""

    name = FAKE.name
    dimensions = FAKE.dimensions
    max_tokens = FAKE.max_tokens

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        return [vector_of(text) for text in texts]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [min(len(text.split()), self.max_tokens) for text in texts]


class DictCache:
    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.up = True

    async def get_many(self, keys: Sequence[str]) -> list[list[float] | None]:
        if not self.up:
            raise CacheUnavailable("down")
        return [self.values.get(key) for key in keys]

    async def put_many(self, vectors: Mapping[str, Sequence[float]]) -> None:
        if not self.up:
            raise CacheUnavailable("down")
        self.values.update({key: list(vector) for key, vector in vectors.items()})

    async def delete_many(self, keys: Sequence[str]) -> int:
        if not self.up:
            raise CacheUnavailable("down")
        return sum(self.values.pop(key, None) is not None for key in keys)


def vector_of(text: str) -> list[float]:
    raw = [float(b) + 1.0 for b in hashlib.sha256(text.encode()).digest()[:4]]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def registry_with(embedder: FakeEmbedder) -> ModelRegistry:
    registry = ModelRegistry(default=FAKE.name)
    registry.register(FAKE, lambda: embedder)
    return registry


async def started(embedder: FakeEmbedder, cache: DictCache, batch_size: int = 3) -> EmbeddingService:
    service = EmbeddingService(
        registry_with(embedder), cache, EmbeddingMetrics(CollectorRegistry()), batch_size=batch_size
    )
    service.start_loading()
    await service.embedder(FAKE.name)
    return service


def test_cache_key_is_model_and_content_hash() -> None:
    key = cache_key("all-MiniLM-L6-v2", "héllo")
    assert key == "rae:emb:v1:all-MiniLM-L6-v2:" + hashlib.sha256("héllo".encode()).hexdigest()
    assert cache_key("other-model", "héllo") != key
    assert cache_key("all-MiniLM-L6-v2", "héllo ") != key


def test_batched_splits_in_order_with_a_short_tail() -> None:
    assert [list(b) for b in batched(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 64)) == []
    with pytest.raises(ValueError):
        list(batched([1], 0))


def test_registry_resolves_default_and_names_the_known_models() -> None:
    registry = registry_with(FakeEmbedder())
    assert registry.resolve(None) == FAKE
    assert registry.resolve(FAKE.name) == FAKE
    with pytest.raises(UnknownModel) as caught:
        registry.resolve("gpt-embed-xl")
    assert caught.value.known == [FAKE.name]
    with pytest.raises(ValueError):
        registry.register(FAKE, FakeEmbedder)


def test_registry_rejects_a_model_with_other_dimensions_than_registered() -> None:
    registry = ModelRegistry(default="wrong")
    registry.register(ModelInfo(name="wrong", dimensions=8, provider="local", max_tokens=8), FakeEmbedder)
    with pytest.raises(ValueError, match="4-d"):
        registry.build("wrong")


async def test_misses_are_encoded_in_batches_once_each_and_answered_in_order() -> None:
    embedder, cache = FakeEmbedder(), DictCache()
    service = await started(embedder, cache, batch_size=3)
    await service.embed(["b", "d"])
    embedder.batches.clear()

    texts = ["a", "b", "c", "a", "d", "e", "f", "g", "c"]
    result = await service.embed(texts)

    assert result.vectors == [vector_of(t) for t in texts]
    assert result.cached == 2
    assert embedder.batches == [["a", "c", "e"], ["f", "g"]]
    assert result.prompt_tokens == 5
    assert set(cache.values) == {cache_key(FAKE.name, t) for t in texts}


async def test_a_cache_that_is_down_means_computing_everything(caplog: pytest.LogCaptureFixture) -> None:
    embedder, cache = FakeEmbedder(), DictCache()
    service = await started(embedder, cache)
    await service.embed(["a"])
    cache.up = False

    result = await service.embed(["a", "b"])

    assert result.cached == 0
    assert result.vectors == [vector_of("a"), vector_of("b")]
    assert "embedding cache unavailable" in caplog.text


async def test_a_cached_vector_of_the_wrong_size_is_recomputed() -> None:
    embedder, cache = FakeEmbedder(), DictCache()
    service = await started(embedder, cache)
    cache.values[cache_key(FAKE.name, "a")] = [1.0, 0.0]

    result = await service.embed(["a"])

    assert result.cached == 0
    assert result.vectors == [vector_of("a")]
    assert cache.values[cache_key(FAKE.name, "a")] == vector_of("a")


REMOTE = ModelInfo(name="remote-4d", dimensions=4, provider="acme", max_tokens=8191)


class FakeRemote:
    """A provider's model; `reports_tokens` False plays a provider that sends no usage."""

    info = REMOTE

    def __init__(self, reports_tokens: bool = True) -> None:
        self.reports_tokens = reports_tokens
        self.batches: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> RemoteVectors:
        self.batches.append(list(texts))
        return RemoteVectors([vector_of(t) for t in texts], 100 * len(texts) if self.reports_tokens else None)


class WordCounter:
    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]


def with_remote(remote: FakeRemote, cache: DictCache) -> EmbeddingService:
    return EmbeddingService(
        registry_with(FakeEmbedder()),
        cache,
        EmbeddingMetrics(CollectorRegistry()),
        batch_size=2,
        remote=[remote],
        counter=WordCounter(),
    )


def test_remote_models_resolve_by_name_or_provider_and_name() -> None:
    service = with_remote(FakeRemote(), DictCache())
    assert service.resolve("remote-4d") == REMOTE
    assert service.resolve("acme/remote-4d") == REMOTE
    assert service.resolve("local/fake-4d") == FAKE
    assert service.resolve(None) == FAKE
    with pytest.raises(UnknownModel) as caught:
        service.resolve("other/remote-4d")
    assert caught.value.known == ["fake-4d", "remote-4d"]
    assert [i.name for i in service.infos] == ["fake-4d", "remote-4d"]


async def test_remote_embeddings_are_batched_cached_and_counted_by_the_provider() -> None:
    remote, cache = FakeRemote(), DictCache()
    service = with_remote(remote, cache)

    first = await service.embed(["a b", "c", "d"], "remote-4d")
    again = await service.embed(["a b", "e"], "acme/remote-4d")

    assert first.vectors == [vector_of("a b"), vector_of("c"), vector_of("d")]
    assert (first.prompt_tokens, first.estimated, first.cached) == (300, False, 0)
    assert (again.cached, again.prompt_tokens) == (1, 100)
    assert remote.batches == [["a b", "c"], ["d"], ["e"]]


async def test_remote_embeddings_without_a_provider_count_are_estimated() -> None:
    service = with_remote(FakeRemote(reports_tokens=False), DictCache())
    result = await service.embed(["one two three", "four"], "remote-4d")
    assert (result.prompt_tokens, result.estimated) == (4, True)


def test_a_remote_model_may_not_shadow_a_local_one() -> None:
    class Shadow(FakeRemote):
        info = ModelInfo(name=FAKE.name, dimensions=4, provider="acme", max_tokens=8)

    with pytest.raises(ValueError, match="unique"):
        with_remote(Shadow(), DictCache())
