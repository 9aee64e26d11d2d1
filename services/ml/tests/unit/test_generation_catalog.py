"""Which provider a request's model name means."""

from __future__ import annotations

import pytest

from rae_ml.domain.generation import (
    AmbiguousModel,
    GenerationCatalog,
    GenerationModel,
    UnknownGenerationModel,
)


@pytest.fixture
def catalog() -> GenerationCatalog:
    catalog = GenerationCatalog()
    catalog.add("local", "local-extractive")
    catalog.add("openai", "gpt-4o-mini")
    catalog.add("openai", "shared")
    catalog.add("vllm", "shared")
    catalog.add("vllm", "meta-llama/Llama-3.1-8B-Instruct")
    return catalog


def test_a_model_offered_once_needs_no_provider(catalog: GenerationCatalog) -> None:
    assert catalog.resolve("gpt-4o-mini") == GenerationModel("openai", "gpt-4o-mini")
    assert catalog.resolve("openai/gpt-4o-mini") == GenerationModel("openai", "gpt-4o-mini")


def test_model_names_may_contain_slashes(catalog: GenerationCatalog) -> None:
    model = GenerationModel("vllm", "meta-llama/Llama-3.1-8B-Instruct")
    assert catalog.resolve("meta-llama/Llama-3.1-8B-Instruct") == model
    assert catalog.resolve("vllm/meta-llama/Llama-3.1-8B-Instruct") == model


def test_a_model_offered_twice_needs_its_provider(catalog: GenerationCatalog) -> None:
    with pytest.raises(AmbiguousModel) as caught:
        catalog.resolve("shared")
    assert caught.value.candidates == ["openai/shared", "vllm/shared"]
    assert catalog.resolve("vllm/shared") == GenerationModel("vllm", "shared")


def test_an_unknown_model_lists_every_known_one(catalog: GenerationCatalog) -> None:
    with pytest.raises(UnknownGenerationModel) as caught:
        catalog.resolve("openai/gpt-5-ultra")
    assert caught.value.known[:2] == ["local/local-extractive", "openai/gpt-4o-mini"]
    assert "gpt-5-ultra" in str(caught.value)


def test_a_provider_cannot_list_a_model_twice(catalog: GenerationCatalog) -> None:
    with pytest.raises(ValueError):
        catalog.add("openai", "gpt-4o-mini")
