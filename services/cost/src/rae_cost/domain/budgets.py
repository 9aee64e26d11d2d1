"""Budgets: UTC periods, usage against limits, and the warnings and limits a usage reaches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from rae_common.contracts.cost import MAX_USAGE_DAYS, BudgetLimit

__all__ = [
    "DEFAULT_WARN_RATIO",
    "METRICS",
    "Budget",
    "Crossing",
    "Level",
    "Metric",
    "Period",
    "PeriodStatus",
    "Totals",
    "as_utc",
    "crossings",
    "period_bounds",
    "ratio",
    "usage_window",
    "utc_day",
]

Period = Literal["day", "month"]
Metric = Literal["tokens", "usd"]
Level = Literal["warning", "exceeded"]
METRICS: tuple[Metric, ...] = ("tokens", "usd")
DEFAULT_WARN_RATIO = Decimal("0.8")
_LIMIT_NAMES: dict[tuple[Period, Metric], BudgetLimit] = {
    ("day", "tokens"): "daily_tokens",
    ("day", "usd"): "daily_usd",
    ("month", "tokens"): "monthly_tokens",
    ("month", "usd"): "monthly_usd",
}


@dataclass(frozen=True, slots=True)
class Budget:
    """A tenant's limits; None is unlimited."""

    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    daily_usd: Decimal | None = None
    monthly_usd: Decimal | None = None
    warn_ratio: Decimal = DEFAULT_WARN_RATIO

    def limit(self, period: Period, metric: Metric) -> Decimal | None:
        value: int | Decimal | None = getattr(self, _LIMIT_NAMES[period, metric])
        return None if value is None else Decimal(value)


@dataclass(frozen=True, slots=True)
class Totals:
    tokens: int = 0
    usd: Decimal = Decimal(0)

    def of(self, metric: Metric) -> Decimal:
        return Decimal(self.tokens) if metric == "tokens" else self.usd


def as_utc(at: datetime) -> datetime:
    """The time in UTC; a time without an offset is taken as UTC (never as the host's zone)."""
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)


def utc_day(at: datetime) -> date:
    return as_utc(at).date()


def period_bounds(period: Period, day: date) -> tuple[date, date]:
    """First day and the day after the last of the UTC day or calendar month holding `day`."""
    if period == "day":
        return day, day + timedelta(days=1)
    start = day.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


def ratio(used: Decimal, limit: Decimal) -> Decimal:
    """used / limit; a zero limit allows nothing, so it counts as fully used."""
    return used / limit if limit > 0 else Decimal(1)


@dataclass(frozen=True, slots=True)
class Crossing:
    """Usage at or over a level of one limit in one period."""

    period: Period
    period_start: date
    metric: Metric
    level: Level
    limit: Decimal
    used: Decimal

    @property
    def ratio(self) -> Decimal:
        return ratio(self.used, self.limit)


def crossings(budget: Budget, period: Period, day: date, totals: Totals) -> list[Crossing]:
    """Every level the period's usage has reached; the caller announces each one once a period.

    Usage that jumps past the limit in one call reaches both levels at once: both are returned.
    """
    start, _ = period_bounds(period, day)
    found: list[Crossing] = []
    for metric in METRICS:
        limit = budget.limit(period, metric)
        if limit is None:
            continue
        used = totals.of(metric)
        if used >= limit * budget.warn_ratio:
            found.append(Crossing(period, start, metric, "warning", limit, used))
        if used >= limit:
            found.append(Crossing(period, start, metric, "exceeded", limit, used))
    return found


@dataclass(frozen=True, slots=True)
class PeriodStatus:
    """One period's usage against the budget's limits for it."""

    period: Period
    start: date
    end: date
    totals: Totals
    limit_tokens: int | None
    limit_usd: Decimal | None

    @classmethod
    def of(cls, budget: Budget | None, period: Period, day: date, totals: Totals) -> PeriodStatus:
        budget = budget or Budget()
        start, end = period_bounds(period, day)
        limit_tokens = budget.limit(period, "tokens")
        return cls(
            period,
            start,
            end,
            totals,
            None if limit_tokens is None else int(limit_tokens),
            budget.limit(period, "usd"),
        )

    @property
    def remaining_tokens(self) -> int | None:
        return None if self.limit_tokens is None else max(self.limit_tokens - self.totals.tokens, 0)

    @property
    def remaining_usd(self) -> Decimal | None:
        return None if self.limit_usd is None else max(self.limit_usd - self.totals.usd, Decimal(0))

    def _limits(self) -> list[tuple[Metric, Decimal]]:
        limits: list[tuple[Metric, Decimal]] = []
        if self.limit_tokens is not None:
            limits.append(("tokens", Decimal(self.limit_tokens)))
        if self.limit_usd is not None:
            limits.append(("usd", self.limit_usd))
        return limits

    @property
    def utilization(self) -> Decimal:
        """The highest used/limit of the period's limits; 0 when it has none."""
        return max((ratio(self.totals.of(m), limit) for m, limit in self._limits()), default=Decimal(0))

    @property
    def exceeded_limits(self) -> list[BudgetLimit]:
        return [
            _LIMIT_NAMES[self.period, metric]
            for metric, limit in self._limits()
            if self.totals.of(metric) >= limit
        ]


def usage_window(since: date | None, until: date | None, today: date) -> tuple[date, date]:
    """The days (both inclusive) of a usage listing: by default the 30 days up to today.

    Raises ValueError for an empty or over-long window.
    """
    until = until or today
    since = since or until - timedelta(days=29)
    if since > until:
        raise ValueError("since must not be after until")
    if (until - since).days >= MAX_USAGE_DAYS:
        raise ValueError(f"since..until spans at most {MAX_USAGE_DAYS} days")
    return since, until
