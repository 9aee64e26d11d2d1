"""Rate-limit policy: which bucket a route spends from, how many requests a tenant gets in it,
and what the quota headers say. The counting itself happens in Redis (`api/limits.py`)."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "BUCKETS",
    "WINDOW_MS",
    "Quota",
    "TenantLimitsCache",
    "limit_subject",
    "quota_from_window",
    "resolve_limit",
]

# One bucket may serve several routes (the three ways of creating memories share one).
BUCKETS = ("memories_create", "search", "ml_generate")
WINDOW_MS = 60_000


def resolve_limit(bucket: str, defaults: Mapping[str, int], overrides: Mapping[str, int]) -> int:
    """Requests per window for a bucket: the tenant's override, else the default; 0 = unlimited."""
    return overrides.get(bucket, defaults[bucket])


def limit_subject(tenant_id: str | None, client_ip: str | None) -> str:
    """Whose bucket a request spends from: its tenant, else (no credential) its client address."""
    if tenant_id:
        return f"tenant:{tenant_id}"
    return f"ip:{client_ip or 'unknown'}"


@dataclass(frozen=True, slots=True)
class Quota:
    bucket: str
    limit: int
    remaining: int
    reset_s: int

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }


def quota_from_window(
    bucket: str,
    limit: int,
    *,
    count: int,
    oldest_ms: int | None,
    blocking_ms: int | None,
    now_ms: int,
    window_ms: int = WINDOW_MS,
) -> Quota:
    """The quota from a sliding-window log: `count` requests in the window, the oldest at
    `oldest_ms`, and (when full) `blocking_ms`, the entry whose expiry makes room for one more.

    Reset is the seconds until the remaining count next grows: when the oldest request leaves
    the window, or, when nothing remains, when the blocking one does (then it equals Retry-After).
    """
    remaining = max(0, limit - count)
    anchor = blocking_ms if remaining == 0 else oldest_ms
    if anchor is None:
        reset_s = 0
    else:
        # +1 ms: an entry exactly at the window's lower bound still counts.
        reset_s = max(1 if remaining == 0 else 0, math.ceil((anchor + window_ms + 1 - now_ms) / 1000))
    return Quota(bucket=bucket, limit=limit, remaining=remaining, reset_s=reset_s)


class TenantLimitsCache:
    """Per-tenant overrides, kept for `ttl_s` so a limited request does not read Postgres each
    time; a write through this gateway invalidates its entry at once, other replicas within ttl."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[Mapping[str, int]]],
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Mapping[str, int]]] = {}

    async def get(self, tenant_id: str) -> Mapping[str, int]:
        now = self._clock()
        cached = self._entries.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        overrides = await self._load(tenant_id)
        if len(self._entries) >= self._max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        if self._ttl_s > 0:
            self._entries[tenant_id] = (now + self._ttl_s, overrides)
        return overrides

    def invalidate(self, tenant_id: str) -> None:
        self._entries.pop(tenant_id, None)
