"""Embedding models as the service sees them: what a model is, how to find it, how to cache it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from rae_common.contracts.erasure import text_digest

__all__ = [
    "CACHE_KEY_PREFIX",
    "CacheUnavailable",
    "Embedder",
    "ModelInfo",
    "ModelRegistry",
    "RemoteEmbedder",
    "RemoteVectors",
    "UnknownModel",
    "VectorCache",
    "batched",
    "cache_key",
    "digest_cache_key",
]

CACHE_KEY_PREFIX = "rae:emb:v1"

T = TypeVar("T")


class Embedder(Protocol):
    """A model that turns texts into L2-normalised vectors.

    Implementations may be slow and blocking (a local model on the CPU, a synchronous HTTP
    call): the service calls `encode` and `count_tokens` from a worker thread, one batch at a
    time, never on the event loop.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Longest input in tokens; longer texts are truncated to it."""
        ...

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-norm vector of `dimensions` floats per text, in the order of `texts`."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model reads for each text, after truncation to `max_tokens`."""
        ...


@dataclass(frozen=True, slots=True)
class RemoteVectors:
    vectors: list[list[float]]
    prompt_tokens: int | None  # None: the provider did not say


class RemoteEmbedder(Protocol):
    """A model behind an API (an OpenAI-compatible `/embeddings`): asynchronous, no local
    weights, answers L2-normalised vectors of `info.dimensions` floats."""

    @property
    def info(self) -> ModelInfo: ...

    async def embed(self, texts: Sequence[str]) -> RemoteVectors:
        """Raises ProviderError, ProviderTimeout, ProviderUnavailable."""
        ...


class CacheUnavailable(ConnectionError):
    """The vector cache did not answer; the caller computes instead."""


class VectorCache(Protocol):
    async def get_many(self, keys: Sequence[str]) -> list[list[float] | None]:
        """The cached vector of each key (None when absent); raises CacheUnavailable."""
        ...

    async def put_many(self, vectors: Mapping[str, Sequence[float]]) -> None:
        """Store vectors by key; raises CacheUnavailable."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Remove these keys; how many were there. Raises CacheUnavailable."""
        ...


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    dimensions: int
    provider: str
    max_tokens: int


class UnknownModel(LookupError):
    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(f"unknown embedding model {name!r}; known models: {', '.join(known)}")
        self.name = name
        self.known = list(known)


@dataclass(frozen=True, slots=True)
class _Entry:
    info: ModelInfo
    build: Callable[[], Embedder]


class ModelRegistry:
    """Local embedding models by name, each with the function that builds its `Embedder`
    (models behind an API are `RemoteEmbedder`s, handed to the embedding service beside this)."""

    def __init__(self, default: str) -> None:
        self.default = default
        self._entries: dict[str, _Entry] = {}

    def register(self, info: ModelInfo, build: Callable[[], Embedder]) -> None:
        if info.name in self._entries:
            raise ValueError(f"embedding model {info.name!r} is already registered")
        self._entries[info.name] = _Entry(info, build)

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    @property
    def infos(self) -> list[ModelInfo]:
        return [entry.info for entry in self._entries.values()]

    def resolve(self, name: str | None) -> ModelInfo:
        """The model called `name` or `<provider>/<name>` (the default one for None)."""
        entry = self._entries.get(name or self.default)
        if entry is None and name and "/" in name:
            provider, _, bare = name.partition("/")
            found = self._entries.get(bare)
            entry = found if found is not None and found.info.provider == provider else None
        if entry is None:
            raise UnknownModel(name or self.default, self.names)
        return entry.info

    def build(self, name: str) -> Embedder:
        """Build the model's `Embedder` (blocking: it may load weights) and check it is the one
        registered."""
        info = self.resolve(name)
        embedder = self._entries[name].build()
        if embedder.dimensions != info.dimensions:
            raise ValueError(
                f"model {name} produces {embedder.dimensions}-d vectors, registered as {info.dimensions}-d"
            )
        return embedder


def cache_key(model: str, text: str) -> str:
    """Content-addressed: the same text embedded by the same model is computed once."""
    return digest_cache_key(model, text_digest(text))


def digest_cache_key(model: str, digest: str) -> str:
    """The cache key of the text whose `text_digest` (the erasure contract's) is `digest`."""
    return f"{CACHE_KEY_PREFIX}:{model}:{digest}"


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]
