"""The packaged pricing file, its replacement, overrides and the cost of a call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rae_ml.domain.pricing import Price, load_pricing


def test_the_packaged_file_prices_local_models_at_zero_and_openai_per_million_tokens() -> None:
    prices = load_pricing()
    assert prices.version == "2026-11-01"
    assert prices.cost("local", "local-extractive", 10_000, 5_000).usd == 0.0
    assert prices.cost("local", "all-MiniLM-L6-v2", 10_000, 0).priced
    # gpt-4o-mini: 0.15 USD in, 0.60 USD out per million tokens.
    assert prices.cost("openai", "gpt-4o-mini", 1_000_000, 1_000_000).usd == pytest.approx(0.75)
    assert prices.cost("openai", "gpt-4o-mini", 1200, 300).usd == pytest.approx(0.00036)


def test_an_unknown_model_costs_nothing_and_says_it_is_unpriced() -> None:
    cost = load_pricing().cost("acme", "secret-model", 1000, 1000)
    assert (cost.usd, cost.priced) == (0.0, False)


def test_overrides_replace_or_add_entries() -> None:
    prices = load_pricing(
        overrides={
            "openai/gpt-4o-mini": Price(input_per_1m=1.0, output_per_1m=2.0),
            "vllm/llama-3-8b": Price(input_per_1m=0.05, output_per_1m=0.05),
        }
    )
    assert prices.cost("openai", "gpt-4o-mini", 1_000_000, 500_000).usd == pytest.approx(2.0)
    assert prices.cost("vllm", "llama-3-8b", 2_000_000, 0).usd == pytest.approx(0.1)
    assert prices.cost("openai", "gpt-4o", 1_000_000, 0).usd == pytest.approx(2.5)


def test_a_pricing_file_replaces_the_packaged_one(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "version": "2027-01-01",
                "currency": "USD",
                "prices": {"corp/model-x": {"input_per_1m": 3, "output_per_1m": 6}},
            }
        )
    )
    prices = load_pricing(str(path))
    assert prices.version == "2027-01-01"
    assert prices.cost("corp", "model-x", 1_000_000, 1_000_000).usd == pytest.approx(9.0)
    assert not prices.cost("openai", "gpt-4o-mini", 1, 1).priced


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"version": "1", "currency": "EUR", "prices": {}}),
        json.dumps(
            {"version": "1", "currency": "USD", "prices": {"a/b": {"input_per_1m": -1, "output_per_1m": 0}}}
        ),
        json.dumps({"currency": "USD", "prices": {}}),
    ],
)
def test_a_malformed_pricing_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="invalid pricing file"):
        load_pricing(str(path))
