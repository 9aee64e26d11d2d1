"""The real all-MiniLM-L6-v2, loaded once per test session and handed to every app."""

from __future__ import annotations

import pytest

from rae_ml.adapters.sentence_transformer import MINILM, SentenceTransformerEmbedder, load_local_embedder
from rae_ml.domain.embeddings import ModelRegistry


@pytest.fixture(scope="session")
def local_embedder() -> SentenceTransformerEmbedder:
    return load_local_embedder(threads=2)


@pytest.fixture(scope="session")
def models(local_embedder: SentenceTransformerEmbedder) -> ModelRegistry:
    registry = ModelRegistry(default=MINILM.name)
    registry.register(MINILM, lambda: local_embedder)
    return registry
