"""Cost-guard admission: a spent budget waits for its period's end, a held one a few seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rae_gateway.domain.budget import PeriodState, Snapshot, admit

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def snapshot(day_tokens: int, month_tokens: int, *, day_end: datetime | None = None) -> Snapshot:
    day = PeriodState("2026-11-21", day_end or NOW + timedelta(hours=12), day_tokens, 0.0, 200, None)
    month = PeriodState("2026-11", NOW + timedelta(days=9), month_tokens, 0.0, 1000, None)
    return Snapshot({"day": day, "month": month}, ())


def test_a_budget_held_by_requests_in_flight_is_refused_for_a_few_seconds() -> None:
    refusal = admit(snapshot(20, 20), {}, 2100, NOW, in_flight_retry_s=3).refusal
    assert refusal is not None and refusal.in_flight
    assert (refusal.period, refusal.used, refusal.reserved, refusal.retry_after_s) == ("day", 20, 2100, 3)


def test_a_spent_budget_waits_for_its_period_to_end_even_with_requests_in_flight() -> None:
    refusal = admit(snapshot(20, 1000), {}, 2100, NOW, in_flight_retry_s=3).refusal
    assert refusal is not None and not refusal.in_flight
    assert (refusal.period, refusal.retry_after_s) == ("month", 9 * 86400)
    spent_today = admit(snapshot(20, 20), {"day": (200, 0.0)}, 2100, NOW).refusal
    assert spent_today is not None and not spent_today.in_flight
    assert spent_today.retry_after_s == 12 * 3600


def test_the_short_retry_never_outlasts_the_period() -> None:
    refusal = admit(snapshot(20, 20, day_end=NOW + timedelta(seconds=1)), {}, 500, NOW, 30).refusal
    assert refusal is not None and refusal.in_flight and refusal.retry_after_s == 1


def test_room_left_is_admitted() -> None:
    admission = admit(snapshot(20, 20), {}, 100, NOW)
    assert admission.refusal is None and admission.remaining_tokens == 80
