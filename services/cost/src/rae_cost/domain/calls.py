"""A model call's usage as the cost service records it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

__all__ = ["USD_QUANTUM", "Call", "to_usd"]

USD_QUANTUM = Decimal("1e-10")  # the scale of the cost columns


@dataclass(frozen=True, slots=True)
class Call:
    id: uuid.UUID
    tenant_id: str
    request_id: str
    operation: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    estimated: bool
    trace_id: str | None
    occurred_at: datetime
    calls: int = 1  # > 1: ml's roll-up of that many calls


def to_usd(amount: float) -> Decimal:
    """A reported cost as stored: the float's shortest decimal form, to 1e-10 USD."""
    return Decimal(repr(amount)).quantize(USD_QUANTUM)
