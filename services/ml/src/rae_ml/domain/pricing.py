"""Prices per provider and model, from a versioned pricing file, and the cost of a call."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Price", "PriceTable", "PricingFile", "load_pricing"]


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_1m: float = Field(ge=0, description="USD per million prompt tokens")
    output_per_1m: float = Field(ge=0, description="USD per million completion tokens")


class PricingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1)
    currency: Literal["USD"]
    prices: dict[str, Price] = Field(description='keyed "<provider>/<model>"')


@dataclass(frozen=True, slots=True)
class Cost:
    usd: float
    priced: bool


class PriceTable:
    def __init__(self, version: str, prices: Mapping[str, Price]) -> None:
        self.version = version
        self._prices = dict(prices)

    def cost(self, provider: str, model: str, prompt_tokens: int, completion_tokens: int) -> Cost:
        """USD of a call; an unpriced model costs 0 (`priced` False lets the caller say so)."""
        price = self._prices.get(f"{provider}/{model}")
        if price is None:
            return Cost(0.0, priced=False)
        usd = (prompt_tokens * price.input_per_1m + completion_tokens * price.output_per_1m) / 1_000_000
        # Rounded to a millionth of a cent: sums of many calls stay free of float noise.
        return Cost(round(usd, 8), priced=True)


def load_pricing(path: str | None = None, overrides: Mapping[str, Price] | None = None) -> PriceTable:
    """The packaged `pricing.json`, or the file at `path` instead; `overrides` replace entries.
    Raises ValueError on a malformed file."""
    if path:
        raw = Path(path).read_text(encoding="utf-8")
    else:
        raw = (resources.files("rae_ml") / "pricing.json").read_text(encoding="utf-8")
    try:
        pricing = PricingFile.model_validate(json.loads(raw))
    except ValueError as exc:
        raise ValueError(f"invalid pricing file {path or 'rae_ml/pricing.json'}: {exc}") from exc
    return PriceTable(pricing.version, {**pricing.prices, **(overrides or {})})
