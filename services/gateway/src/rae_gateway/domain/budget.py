"""Cost-guard policy: may a token-spending request start, given the tenant's budget state?

The state has three parts, each a lower bound of what the tenant really spent:
- the cost service's view (every recorded `llm.usage`, internal calls included), read at most
  every few seconds and dropped when a budget event arrives;
- the gateway's own count of the usage its answers reported, current to the last answer;
- reservations of the requests in flight: each reserves its worst case (prompt estimate +
  `max_tokens`) before it is forwarded, and gives it back when its answer arrives.

A request starts only while `max(cost view, gateway count) + other requests' reservations` is
below every token limit, and while recorded spend is below every USD limit. A refusal says which
of two things happened: the budget is spent (retry when its period ends), or it is only held by
the reservations of requests in flight (retry in a few seconds: they give back what they do not
use when they finish). So calls through the
gateway overshoot a token limit by at most ONE request's reservation (the last one admitted), and
a USD limit by at most the cost of the requests in flight when it was reached (the gateway knows
no prices). Usage the gateway does not see (services calling ml themselves) counts once the cost
service has recorded it: its lag is the other term of the bound (docs/COST.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["PERIODS", "Admission", "BudgetRefusal", "PeriodState", "Snapshot", "admit", "estimate_tokens"]

PERIODS = ("day", "month")
# Characters per token assumed when reserving a prompt: low on purpose (real English text runs ~4),
# so the reservation errs on the high side.
CHARS_PER_TOKEN = 3


def estimate_tokens(prompt_chars: int, max_output_tokens: int) -> int:
    """The worst case a request can spend: its prompt at 3 characters a token, plus its output cap."""
    return math.ceil(prompt_chars / CHARS_PER_TOKEN) + max_output_tokens


@dataclass(frozen=True, slots=True)
class PeriodState:
    key: str  # "2026-11-21" (day) or "2026-11" (month): names the gateway's counters
    end: datetime
    tokens: int
    usd: float
    limit_tokens: int | None
    limit_usd: float | None


_LIMIT_NAMES = {"daily": "day", "monthly": "month"}


@dataclass(frozen=True, slots=True)
class Snapshot:
    periods: Mapping[str, PeriodState]
    # (period, metric) of each limit the cost service saw reached, e.g. ("day", "tokens").
    exceeded: tuple[tuple[str, str], ...]

    @property
    def limited(self) -> bool:
        return any(p.limit_tokens is not None or p.limit_usd is not None for p in self.periods.values())

    @classmethod
    def from_cost(cls, usage: Mapping[str, Any]) -> Snapshot:
        """From the cost service's `GET /v1/governance/tenant/{id}` answer."""
        periods = {}
        for name in PERIODS:
            current = usage["current"][name]
            start = datetime.fromisoformat(current["start"])
            periods[name] = PeriodState(
                key=start.strftime("%Y-%m-%d" if name == "day" else "%Y-%m"),
                end=datetime.fromisoformat(current["end"]),
                tokens=int(current["tokens"]),
                usd=float(current["usd"]),
                limit_tokens=current["limit_tokens"],
                limit_usd=current["limit_usd"],
            )
        exceeded = tuple(
            (_LIMIT_NAMES[prefix], metric)
            for prefix, _, metric in (name.partition("_") for name in usage.get("exceeded_limits", ()))
        )
        return cls(periods, exceeded)


@dataclass(frozen=True, slots=True)
class BudgetRefusal:
    period: str
    metric: str  # tokens | usd
    limit: float
    used: float
    retry_after_s: int
    # Tokens other requests in flight hold: > 0 when they, not spent usage, fill the budget.
    reserved: int = 0

    @property
    def in_flight(self) -> bool:
        """The budget is not spent, only reserved by requests that have not finished yet."""
        return self.reserved > 0 and self.used < self.limit


@dataclass(frozen=True, slots=True)
class Admission:
    refusal: BudgetRefusal | None
    # Smallest remaining allowance over the limited periods once this request's reservation is
    # taken into account; None when no limit of that metric is set.
    remaining_tokens: int | None
    remaining_usd: float | None


def admit(
    snapshot: Snapshot,
    spent: Mapping[str, tuple[int, float]],
    reserved_by_others: int,
    now: datetime,
    in_flight_retry_s: int = 2,
) -> Admission:
    """Whether a request may start. `spent` = the gateway's own (tokens, usd) per period name.

    A spent limit (of any period) wins over one only held by reservations, whose refusal says
    `retry in in_flight_retry_s` instead of at the period's end."""
    remaining_tokens: int | None = None
    remaining_usd: float | None = None
    held: BudgetRefusal | None = None
    for name, period in snapshot.periods.items():
        own_tokens, own_usd = spent.get(name, (0, 0.0))
        tokens = max(period.tokens, own_tokens)
        usd = max(period.usd, own_usd)
        retry = max(1, math.ceil((period.end - now).total_seconds()))
        if period.limit_tokens is not None:
            if tokens >= period.limit_tokens:
                return Admission(BudgetRefusal(name, "tokens", period.limit_tokens, tokens, retry), 0, None)
            committed = tokens + reserved_by_others
            if committed >= period.limit_tokens and held is None:
                held = BudgetRefusal(
                    name,
                    "tokens",
                    period.limit_tokens,
                    tokens,
                    min(retry, in_flight_retry_s),
                    reserved=reserved_by_others,
                )
            left = max(0, period.limit_tokens - committed)
            remaining_tokens = left if remaining_tokens is None else min(remaining_tokens, left)
        if period.limit_usd is not None:
            if usd >= period.limit_usd:
                return Admission(BudgetRefusal(name, "usd", period.limit_usd, usd, retry), None, 0.0)
            left_usd = period.limit_usd - usd
            remaining_usd = left_usd if remaining_usd is None else min(remaining_usd, left_usd)
    for name, metric in snapshot.exceeded:
        # The cost service saw a limit reached (a lowered budget, say) that these numbers do not show.
        period = snapshot.periods[name]
        retry = max(1, math.ceil((period.end - now).total_seconds()))
        limit = (period.limit_tokens if metric == "tokens" else period.limit_usd) or 0
        used = period.tokens if metric == "tokens" else period.usd
        return Admission(BudgetRefusal(name, metric, limit, used, retry), remaining_tokens, remaining_usd)
    return Admission(held, remaining_tokens, remaining_usd)
