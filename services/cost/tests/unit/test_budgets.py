"""Budget arithmetic: UTC periods, levels reached, what is left."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from rae_cost.domain.budgets import (
    Budget,
    PeriodStatus,
    Totals,
    crossings,
    period_bounds,
    usage_window,
    utc_day,
)
from rae_cost.domain.calls import to_usd


def test_a_day_is_the_utc_day_and_a_month_the_utc_calendar_month() -> None:
    assert period_bounds("day", date(2024, 12, 31)) == (date(2024, 12, 31), date(2025, 1, 1))
    assert period_bounds("month", date(2024, 12, 31)) == (date(2024, 12, 1), date(2025, 1, 1))
    assert period_bounds("month", date(2024, 2, 29)) == (date(2024, 2, 1), date(2024, 3, 1))
    assert period_bounds("month", date(2025, 1, 1)) == (date(2025, 1, 1), date(2025, 2, 1))
    late_in_new_york = datetime(2024, 3, 31, 22, 30, tzinfo=timezone(timedelta(hours=-4)))
    assert utc_day(late_in_new_york) == date(2024, 4, 1)
    assert utc_day(datetime(2024, 3, 31, 23, 59)) == date(2024, 3, 31)  # no offset: UTC


def test_levels_are_reached_at_the_warning_ratio_and_at_the_limit() -> None:
    budget = Budget(daily_tokens=1000, monthly_usd=Decimal("10"))
    day = date(2024, 5, 15)
    assert crossings(budget, "day", day, Totals(tokens=799)) == []
    [warning] = crossings(budget, "day", day, Totals(tokens=800))
    assert (warning.period, warning.period_start, warning.metric, warning.level) == (
        "day",
        day,
        "tokens",
        "warning",
    )
    assert warning.ratio == Decimal("0.8")
    assert [c.level for c in crossings(budget, "day", day, Totals(tokens=1000))] == ["warning", "exceeded"]
    # Unlimited metrics and periods never reach anything.
    assert crossings(budget, "day", day, Totals(tokens=0, usd=Decimal(10**6))) == []
    [month_warning, month_exceeded] = crossings(budget, "month", day, Totals(usd=Decimal("12.5")))
    assert month_warning.period_start == date(2024, 5, 1)
    assert (month_exceeded.metric, month_exceeded.level, month_exceeded.ratio) == (
        "usd",
        "exceeded",
        Decimal("1.25"),
    )


def test_the_warning_ratio_is_the_budgets_own() -> None:
    budget = Budget(daily_usd=Decimal("2"), warn_ratio=Decimal("0.5"))
    assert [c.level for c in crossings(budget, "day", date(2024, 1, 1), Totals(usd=Decimal("1")))] == [
        "warning"
    ]


def test_a_zero_limit_allows_nothing() -> None:
    budget = Budget(daily_tokens=0)
    reached = crossings(budget, "day", date(2024, 1, 1), Totals())
    assert [(c.level, c.ratio) for c in reached] == [("warning", 1), ("exceeded", 1)]


def test_period_status_reports_what_is_left_and_the_highest_utilization() -> None:
    budget = Budget(daily_tokens=1000, daily_usd=Decimal("1.00"), monthly_tokens=5000)
    day = date(2024, 5, 15)
    today = PeriodStatus.of(budget, "day", day, Totals(tokens=250, usd=Decimal("1.50")))
    assert (today.start, today.end) == (day, date(2024, 5, 16))
    assert today.remaining_tokens == 750
    assert today.remaining_usd == 0  # never below zero
    assert today.utilization == Decimal("1.5")
    assert today.exceeded_limits == ["daily_usd"]
    month = PeriodStatus.of(budget, "month", day, Totals(tokens=5000))
    assert (month.limit_usd, month.remaining_usd, month.remaining_tokens) == (None, None, 0)
    assert month.exceeded_limits == ["monthly_tokens"]


def test_without_a_budget_everything_is_unlimited() -> None:
    status = PeriodStatus.of(None, "month", date(2024, 5, 15), Totals(tokens=10**9, usd=Decimal(10**6)))
    assert (status.limit_tokens, status.limit_usd, status.remaining_tokens, status.remaining_usd) == (
        None,
        None,
        None,
        None,
    )
    assert status.utilization == 0
    assert status.exceeded_limits == []


def test_usage_window_defaults_to_the_last_30_days_and_is_bounded() -> None:
    today = date(2024, 5, 15)
    assert usage_window(None, None, today) == (date(2024, 4, 16), today)
    assert usage_window(None, date(2024, 1, 31), today) == (date(2024, 1, 2), date(2024, 1, 31))
    assert usage_window(today, today, today) == (today, today)
    with pytest.raises(ValueError, match="after"):
        usage_window(date(2024, 5, 16), today, today)
    with pytest.raises(ValueError, match="366"):
        usage_window(date(2023, 5, 15), today, today)
    assert usage_window(date(2023, 5, 16), today, today)[0] == date(2023, 5, 16)


@pytest.mark.parametrize(
    ("reported", "stored"),
    [
        (0.1, Decimal("0.1000000000")),
        (0.000123, Decimal("0.0001230000")),
        (1.2345678901234567e-05, Decimal("0.0000123457")),
        (0.0, Decimal("0E-10")),
        (1e-20, Decimal("0E-10")),
    ],
)
def test_reported_costs_are_kept_as_their_decimal_form(reported: float, stored: Decimal) -> None:
    assert to_usd(reported) == stored


def test_utc_day_of_an_aware_utc_time() -> None:
    assert utc_day(datetime(2024, 5, 15, 0, 0, tzinfo=UTC)) == date(2024, 5, 15)
