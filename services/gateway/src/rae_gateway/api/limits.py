"""Per-tenant rate limits on Redis with fastapi-limiter and pyrate-limiter.

The integration is the libraries': fastapi-limiter's `RateLimiter` (minus its route scan, see
`_RouteFreeRateLimiter`) asks a pyrate-limiter `Limiter`, whose bucket is ours
(`adapters/limits.py`): one Lua script on Redis trims the sliding window, counts it and records
the request in one atomic step, on Redis's clock, so every gateway replica shares one exact count
whatever the concurrency (pyrate-limiter's `RedisBucket` stamps requests with the caller's clock
and over-admits concurrent bursts). A tenant's limit can change at any moment (admin API), so the
bucket is built per request for `(bucket, tenant)` with the tenant's current limit; it is only a
handle on the Redis key, which holds all the state. The same script returns the window it
decided on, which gives the quota headers: there is no second counter and no second read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request, Response
from fastapi_limiter.depends import RateLimiter
from pyrate_limiter import Limiter, SingleBucketFactory
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rae_common.app import StateDep
from rae_common.errors import ProblemError
from rae_gateway.adapters.keys import StoreUnavailable
from rae_gateway.adapters.limits import SlidingWindowBucket
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
        self._acquire_script = SlidingWindowBucket.register(redis)

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
        counter = SlidingWindowBucket(self._redis, self._acquire_script, key, limit, WINDOW_MS)
        try:
            admitted = await self._acquire(request, response, counter, key)
        except (RedisError, OSError) as exc:
            # Limits protect fairness, not data: an outage of Redis must not take the API down.
            _log.warning("rate limiting skipped, Redis unavailable: %s", exc)
            return None
        window = counter.window
        assert window is not None  # set by the decision that just ran
        quota = quota_from_window(
            bucket,
            limit,
            count=window.count,
            oldest_ms=window.oldest_ms,
            blocking_ms=window.blocking_ms,
            now_ms=window.now_ms,
        )
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

    @staticmethod
    async def _acquire(request: Request, response: Response, bucket: SlidingWindowBucket, key: str) -> bool:
        admitted = True

        async def refuse(_request: Request, _response: Response) -> None:
            nonlocal admitted
            admitted = False

        async def identify(_request: Request) -> str:
            return key

        limiter = Limiter(SingleBucketFactory(bucket, schedule_leak=False))
        await _RouteFreeRateLimiter(limiter=limiter, identifier=identify, callback=refuse)(request, response)
        return admitted


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
