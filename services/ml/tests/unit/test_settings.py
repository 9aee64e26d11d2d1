"""Provider API keys can live apart from ML_PROVIDERS (a Kubernetes Secret holds them)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rae_ml.main import MLSettings

PROVIDERS = '[{"name":"openai","base_url":"https://llm.example/v1","models":["m"]},' + (
    '{"name":"own","base_url":"https://own.example/v1","api_key":"inline","models":["n"]}]'
)


def test_a_key_from_ml_provider_api_keys_reaches_its_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_PROVIDERS", PROVIDERS)
    monkeypatch.setenv("ML_PROVIDER_API_KEYS", '{"openai": "sk-apart", "own": "ignored"}')
    settings = MLSettings()
    keys = {p.name: settings.provider_api_key(p) for p in settings.ml_providers}
    assert keys == {"openai": "sk-apart", "own": "inline"}
    assert "sk-apart" not in repr(settings)


def test_a_key_for_a_provider_that_does_not_exist_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_PROVIDERS", PROVIDERS)
    monkeypatch.setenv("ML_PROVIDER_API_KEYS", '{"opneai": "sk-typo"}')
    with pytest.raises(ValidationError, match=r"ML_PROVIDER_API_KEYS names providers .* \['opneai'\]"):
        MLSettings()
