"""Per-tenant rate limits on Redis with fastapi-limiter and pyrate-limiter.

The decision is the libraries': fastapi-limiter's `RateLimiter` (minus its route scan, see
`_RouteFreeRateLimiter`) asks a pyrate-limiter `Limiter` over a `RedisBucket`, whose Lua script
counts the sliding window and records the request in one atomic step, so every gateway replica
shares the count. A `RedisBucket` has one fixed Redis key
and fixed rates, while a tenant's limit can change at any moment (admin API), so the bucket is
built per request for `(bucket, tenant)` with the tenant's current rate; it is only a handle on
the Redis key, which holds all the state.

Neither library reports what is left, so the quota headers come from reading that same sorted
set right after the decision (one short Lua script: drop expired entries, count, find the entry
whose expiry makes room, refresh the key's TTL). No second counter exists. That script is also
the bucket's leak: buckets built per request are not registered with pyrate-limiter's background
leaker, and an idle tenant's key expires on its own one window after its last request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request, Response
from fastapi_limiter.depends import RateLimiter
from pyrate_limiter import Duration, Limiter, Rate, RedisBucket, SingleBucketFactory
from redis.exceptions import NoScriptError, RedisError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rae_common.app import StateDep
from rae_common.errors import ProblemError
from rae_gateway.adapters.keys import StoreUnavailable
from rae_gateway.domain.limits import (
    WINDOW_MS,
    Quota,
    TenantLimitsCache,
    limit_subject,
    quota_from_window,
    resolve_limit,
)

__all__ = ["QuotaHeadersMiddleware", "RateLimits", "rate_limit"]

_log = logging.getLogger("rae.gateway.limits")

_READ_WINDOW = """
local key = KEYS[1]
local window_start = ARGV[1]
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. window_start)
local count = redis.call('ZCARD', key)
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local blocking = {}
if count >= limit then
  blocking = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
end
redis.call('PEXPIRE', key, window + 1000)
return {count, tonumber(oldest[2]) or -1, tonumber(blocking[2]) or -1}
"""


class _RouteFreeRateLimiter(RateLimiter):
    """fastapi-limiter's `RateLimiter` without its route scan.

    0.2.0 walks `request.app.routes` reading `route.path` to tell routes apart; since FastAPI
    0.137 an included router sits there as an `_IncludedRouter` without `.path`, so the scan
    raises AttributeError on every app built from routers (all of ours). The gateway needs no
    per-route suffix anyway (routes share buckets), so the key is the identifier's alone.
    """

    async def __call__(self, request: Request, response: Response) -> Any:
        key = await self.identifier(request)
        if not await self.limiter.try_acquire_async(key, blocking=self.blocking):
            return await self.callback(request, response)
        return None


class RateLimits:
    """Limits of every bucket: defaults from settings, per-tenant overrides from the tenants table."""

    def __init__(
        self, redis: aioredis.Redis, defaults: Mapping[str, int], overrides: TenantLimitsCache
    ) -> None:
        self._redis = redis
        self._defaults = dict(defaults)
        self.overrides = overrides
        self._read_window = redis.register_script(_READ_WINDOW)
        self._script_hash: str | None = None

    async def limit_for(self, bucket: str, tenant_id: str | None) -> int:
        overrides: Mapping[str, int] = {}
        if tenant_id:
            try:
                overrides = await self.overrides.get(tenant_id)
            except StoreUnavailable:
                _log.warning("tenant limits unavailable; using the defaults for %s", tenant_id)
        return resolve_limit(bucket, self._defaults, overrides)

    async def spend(
        self, request: Request, response: Response, bucket: str, subject: str, limit: int
    ) -> Quota | None:
        """Take one request from the bucket or raise the 429; None (not limited) while Redis is down."""
        key = f"rae:ratelimit:{bucket}:{subject}"
        try:
            admitted = await self._acquire(request, response, key, limit)
            quota = await self._read(bucket, key, limit)
        except (RedisError, OSError) as exc:
            # Limits protect fairness, not data: an outage of Redis must not take the API down.
            _log.warning("rate limiting skipped, Redis unavailable: %s", exc)
            return None
        if admitted:
            return quota
        retry_after = max(1, quota.reset_s)
        refused = Quota(bucket=bucket, limit=limit, remaining=0, reset_s=retry_after)
        raise ProblemError(
            429,
            f"Rate limit '{bucket}' of {limit} requests per minute exceeded; retry in {retry_after} s.",
            slug="rate-limited",
            headers={"Retry-After": str(retry_after), **refused.headers()},
            extensions={"limit_name": bucket, "limit": limit, "window_seconds": WINDOW_MS // 1000},
        )

    async def _acquire(self, request: Request, response: Response, key: str, limit: int) -> bool:
        try:
            return await self._try_acquire(request, response, key, limit)
        except NoScriptError:
            # Redis restarted and forgot the bucket's script: load it again, once.
            self._script_hash = None
            return await self._try_acquire(request, response, key, limit)

    async def _try_acquire(self, request: Request, response: Response, key: str, limit: int) -> bool:
        admitted = True

        async def refuse(_request: Request, _response: Response) -> None:
            nonlocal admitted
            admitted = False

        async def identify(_request: Request) -> str:
            return key

        bucket = await self._bucket(key, limit)
        limiter = Limiter(SingleBucketFactory(bucket, schedule_leak=False))
        await _RouteFreeRateLimiter(limiter=limiter, identifier=identify, callback=refuse)(request, response)
        return admitted

    async def _bucket(self, key: str, limit: int) -> RedisBucket:
        rates = [Rate(limit, Duration.MINUTE)]
        if self._script_hash is None:
            bucket: RedisBucket = await RedisBucket.init(rates, self._redis, key)
            self._script_hash = bucket.script_hash
            return bucket
        return RedisBucket(rates, self._redis, key, self._script_hash)

    async def _read(self, bucket: str, key: str, limit: int) -> Quota:
        now_ms = time.time_ns() // 1_000_000  # the clock RedisBucket stamps its entries with
        count, oldest, blocking = await self._read_window(
            keys=[key], args=[now_ms - WINDOW_MS, WINDOW_MS, limit]
        )
        return quota_from_window(
            bucket,
            limit,
            count=int(count),
            oldest_ms=None if int(oldest) < 0 else int(oldest),
            blocking_ms=None if int(blocking) < 0 else int(blocking),
            now_ms=now_ms,
        )


def rate_limit(bucket: str) -> Callable[..., Awaitable[Quota | None]]:
    """A dependency spending one request of `bucket` for the caller's tenant (or address).

    Declare it after the route's credential dependency: it keys on the principal that one set.
    The quota headers go on whatever the request is answered with (`QuotaHeadersMiddleware`).
    """

    async def spend(request: Request, response: Response, state: StateDep) -> Quota | None:
        limits: RateLimits = state.get("rate_limits")
        principal = getattr(request.state, "principal", None)
        tenant_id = principal.tenant_id if principal is not None else None
        limit = await limits.limit_for(bucket, tenant_id)
        if limit == 0:
            return None
        subject = limit_subject(tenant_id, request.client.host if request.client else None)
        quota = await limits.spend(request, response, bucket, subject, limit)
        if quota is not None:
            request.state.quota_headers = quota.headers()
        return quota

    return spend


class QuotaHeadersMiddleware:
    """Adds the quota of a limited request to its answer, whatever produced it: the service's
    response, a validation 422, a 503 for a service that is down."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Created here, so every copy of the scope further in shares this dict (Request.state).
        state = scope.setdefault("state", {})

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start" and (quota := state.get("quota_headers")):
                headers = MutableHeaders(scope=message)
                for name, value in quota.items():
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_quota)
