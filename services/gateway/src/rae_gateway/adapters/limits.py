"""A pyrate-limiter bucket whose every decision is one Lua script on Redis, timed by Redis's clock.

pyrate-limiter's own `RedisBucket` stamps each request with the gateway's clock and counts the
entries between the window's start and that stamp. Concurrent requests reach Redis in another
order than they took their stamps (one waits for a pooled connection while a later one runs),
so a request does not count the entries of those stamped after it: 100 concurrent requests
against a limit of 60 admitted 73-79, and replicas with skewed clocks would do the same. Here
the script reads `TIME` itself and counts every entry still in the window, so the check and
the insert are one atomic step on one clock: exactly `limit` requests pass, whatever the
concurrency, the number of replicas or their restarts.

The same script returns the window it decided on, for the quota headers: no second read.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
from pyrate_limiter import AbstractBucket, Decision, Rate, RateItem
from redis.commands.core import AsyncScript

__all__ = ["ACQUIRE_SCRIPT", "SlidingWindowBucket", "Window"]

# KEYS[1] the window's sorted set; ARGV: window (ms), limit, a unique member for this request.
# Returns {admitted, count, now, oldest, blocking}: the count after this request, Redis's time
# (ms), the oldest entry's time, and when full the entry whose expiry makes room for one more
# (-1 when there is none).
ACQUIRE_SCRIPT = """
local key = KEYS[1]
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('(%d', now - window))
local count = redis.call('ZCARD', key)
local admitted = 0
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  count = count + 1
  admitted = 1
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local blocking = {}
if count >= limit then
  blocking = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
end
redis.call('PEXPIRE', key, window + 1000)
return {admitted, count, now, tonumber(oldest[2]) or -1, tonumber(blocking[2]) or -1}
"""


@dataclass(frozen=True, slots=True)
class Window:
    """The sliding window as the script left it (times in ms on Redis's clock)."""

    count: int
    now_ms: int
    oldest_ms: int | None
    blocking_ms: int | None


class SlidingWindowBucket(AbstractBucket):
    """One `(bucket, tenant)` window of `limit` requests per `window_ms`: a handle on its Redis key.

    Built per request with the tenant's current limit (an admin may change it at any moment);
    all the state is in Redis. The script trims the window on every request and the key expires
    one window after the last one, so no background leak is scheduled.
    """

    is_async = True

    def __init__(
        self, redis: aioredis.Redis, script: AsyncScript, key: str, limit: int, window_ms: int
    ) -> None:
        self.rates = [Rate(limit, window_ms)]
        self._redis = redis
        self._script = script
        self._key = key
        self._limit = limit
        self._window_ms = window_ms
        self.window: Window | None = None  # set by put()

    @staticmethod
    def register(redis: aioredis.Redis) -> AsyncScript:
        """The script, loaded again by redis-py whenever Redis has forgotten it (a restart)."""
        return redis.register_script(ACQUIRE_SCRIPT)

    def now(self) -> int:
        # Only a label on pyrate-limiter's item: the decision is made on Redis's clock.
        return time.time_ns() // 1_000_000

    async def put(self, item: RateItem) -> bool:
        admitted, count, now, oldest, blocking = await self._script(
            keys=[self._key],
            args=[self._window_ms, self._limit, f"{item.name}:{uuid.uuid4().hex}"],
            client=self._redis,
        )
        self.window = Window(
            count=int(count),
            now_ms=int(now),
            oldest_ms=None if int(oldest) < 0 else int(oldest),
            blocking_ms=None if int(blocking) < 0 else int(blocking),
        )
        if int(admitted):
            return self._record(item, Decision())
        retry_after_ms = None
        if self.window.blocking_ms is not None:
            retry_after_ms = max(0, self.window.blocking_ms + self._window_ms + 1 - self.window.now_ms)
        return self._record(item, Decision(failing_rate=self.rates[0], retry_after_ms=retry_after_ms))

    async def leak(self, current_timestamp: int | None = None) -> int:  # noqa: ARG002
        return 0  # every put() trims the window first, on Redis's clock

    async def flush(self) -> None:
        await self._redis.delete(self._key)
        self.failing_rate = None

    async def count(self) -> int:
        return int(await self._redis.zcard(self._key))

    async def peek(self, index: int) -> RateItem | None:
        newest_first = await self._redis.zrevrange(self._key, index, index, withscores=True)
        if not newest_first:
            return None
        member, score = cast("tuple[bytes, float]", newest_first[0])
        return RateItem(name=member.decode(), timestamp=int(score))
