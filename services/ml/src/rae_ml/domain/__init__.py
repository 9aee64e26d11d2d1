"""Pure logic of embeddings, generation, extraction, pricing and resilience: no driver, no web
framework."""

from rae_ml.domain.embeddings import (
    CACHE_KEY_PREFIX,
    CacheUnavailable,
    Embedder,
    ModelInfo,
    ModelRegistry,
    UnknownModel,
    VectorCache,
    batched,
    cache_key,
)

__all__ = [
    "CACHE_KEY_PREFIX",
    "CacheUnavailable",
    "Embedder",
    "ModelInfo",
    "ModelRegistry",
    "UnknownModel",
    "VectorCache",
    "batched",
    "cache_key",
]
