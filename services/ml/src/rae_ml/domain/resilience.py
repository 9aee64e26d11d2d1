"""Retry backoff and a circuit breaker: pure state machines, time and randomness handed in.

Checked first: tenacity/stamina retry but know nothing of `Retry-After` or of a breaker shared
by every request to one provider; pybreaker's asyncio support needs tornado, and purgatory has
no single-trial half-open state. Both pieces are a few lines here, and tested as such.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "BreakerState", "CircuitBreaker", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits between half and all of
    `base_s * 2**n` (capped at `max_s`), so retries of concurrent callers spread out but
    never retry at once."""

    base_s: float
    max_s: float
    jitter: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float | None:
        """Seconds to wait before retry number `attempt + 1` (`attempt` counts from 0).

        A provider's `Retry-After` is a floor; one that asks for more than `max_s` means
        "do not retry now" (None): waiting that long would hold the caller past reason.
        """
        ceiling = min(self.max_s, self.base_s * 2.0**attempt)
        wait = ceiling / 2 + self.jitter() * ceiling / 2
        if retry_after_s is None:
            return wait
        if retry_after_s > self.max_s:
            return None
        return max(wait, retry_after_s)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date; None when absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class BreakerState(enum.IntEnum):
    """Values of the `rae_ml_breaker_state` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """`failures` consecutive failures open the breaker for `reset_s`; then it is half-open and
    lets exactly one trial call through: its success closes the breaker, its failure opens it
    again for another `reset_s`. `now` values are monotonic seconds."""

    def __init__(self, failures: int, reset_s: float) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self.failures = failures
        self.reset_s = reset_s
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    def state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._trial_in_flight or now >= self._opened_at + self.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self, now: float) -> bool:
        """May a call go out now? In half-open state this takes the single trial."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def retry_after(self, now: float) -> float:
        """Seconds until a call may be tried again (0 when one may go now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - now)

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self, now: float) -> None:
        self._consecutive += 1
        if self._trial_in_flight or self._consecutive >= self.failures:
            self._opened_at = now
        self._trial_in_flight = False

    def abandon(self) -> None:
        """The call that took the trial ended without a verdict (cancelled): free the trial."""
        self._trial_in_flight = False
