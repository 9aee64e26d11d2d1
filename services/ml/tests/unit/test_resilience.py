"""Backoff and circuit breaker state machines, with time and randomness in the test's hands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rae_ml.domain.resilience import Backoff, BreakerState, CircuitBreaker, parse_retry_after


def test_backoff_doubles_between_half_and_all_of_the_ceiling_and_stops_at_the_cap() -> None:
    lowest = Backoff(base_s=0.5, max_s=4.0, jitter=lambda: 0.0)
    highest = Backoff(base_s=0.5, max_s=4.0, jitter=lambda: 1.0)
    assert [lowest.delay(n) for n in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert [highest.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_retry_after_is_a_floor_and_one_past_the_cap_means_do_not_retry() -> None:
    backoff = Backoff(base_s=0.5, max_s=4.0, jitter=lambda: 0.0)
    assert backoff.delay(0, retry_after_s=3.0) == 3.0
    assert backoff.delay(3, retry_after_s=0.0) == 2.0
    assert backoff.delay(0, retry_after_s=4.0) == 4.0
    assert backoff.delay(0, retry_after_s=60.0) is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == seconds


def test_breaker_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failures=3, reset_s=10.0)
    for now in (1.0, 2.0):
        assert breaker.allow(now)
        breaker.record_failure(now)
    breaker.record_success()  # a success in between starts the count again
    for now in (3.0, 4.0):
        breaker.record_failure(now)
    assert breaker.state(4.0) is BreakerState.CLOSED
    breaker.record_failure(5.0)
    assert breaker.state(5.0) is BreakerState.OPEN
    assert not breaker.allow(6.0)
    assert breaker.retry_after(6.0) == 9.0


def test_half_open_lets_exactly_one_trial_through_and_its_success_closes() -> None:
    breaker = CircuitBreaker(failures=1, reset_s=10.0)
    breaker.record_failure(0.0)
    assert not breaker.allow(9.9)
    assert breaker.state(10.0) is BreakerState.HALF_OPEN
    assert breaker.allow(10.0)
    assert not breaker.allow(10.1)  # the trial is in flight
    assert breaker.state(10.1) is BreakerState.HALF_OPEN
    breaker.record_success()
    assert breaker.state(10.2) is BreakerState.CLOSED
    assert breaker.allow(10.2) and breaker.allow(10.2)


def test_a_failed_trial_opens_the_breaker_for_another_period() -> None:
    breaker = CircuitBreaker(failures=5, reset_s=10.0)
    for _ in range(5):
        breaker.record_failure(0.0)
    assert breaker.allow(10.0)
    breaker.record_failure(10.5)  # one failure is enough in half-open state
    assert breaker.state(11.0) is BreakerState.OPEN
    assert not breaker.allow(20.0)
    assert breaker.allow(20.5)


def test_an_abandoned_trial_frees_the_slot_for_the_next_caller() -> None:
    breaker = CircuitBreaker(failures=1, reset_s=1.0)
    breaker.record_failure(0.0)
    assert breaker.allow(1.0)
    breaker.abandon()
    assert breaker.allow(1.0)


def test_breaker_needs_a_positive_threshold() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0, reset_s=1.0)
