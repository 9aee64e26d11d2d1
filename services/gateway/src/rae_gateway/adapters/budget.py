"""The cost guard's state in Redis (shared by every gateway replica) and its source, the cost service.

Keys per tenant:
- `rae:budget:{tenant}:state`: the cost service's current day/month usage, limits and reached
  limits (JSON), kept `cache_s` seconds and deleted when a budget event for the tenant arrives;
- `rae:budget:{tenant}:spent:{period}`: hash {tokens, usd} of the usage the gateway's own answers
  reported in that period (`2026-11-21`, `2026-11`), kept a little longer than the period;
- `rae:budget:{tenant}:inflight`: sorted set of the reservations of requests in flight
  (`<request id>:<tokens>`, scored by expiry so a crashed replica's reservations lapse).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rae_gateway.domain.budget import PERIODS, Admission, Snapshot, admit

__all__ = ["BudgetStateUnavailable", "BudgetStore", "Reservation"]

_log = logging.getLogger("rae.gateway.budget")

# Atomically: drop lapsed reservations, sum the others, add this one. Returns the others' sum.
_RESERVE = """
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
local total = 0
for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  total = total + tonumber(string.match(member, ':(%d+)$'))
end
redis.call('ZADD', key, ARGV[2], ARGV[3])
redis.call('EXPIRE', key, ARGV[4])
return total
"""
_SPENT_TTL_S = {"day": 2 * 86400, "month": 33 * 86400}


class BudgetStateUnavailable(RuntimeError):
    """Neither Redis nor the cost service could say where the tenant stands."""


@dataclass(frozen=True, slots=True)
class Reservation:
    tenant_id: str
    member: str | None  # None: the tenant has no limit, nothing was reserved
    snapshot: Snapshot
    admission: Admission

    @classmethod
    def unchecked(cls, tenant_id: str) -> Reservation:
        """Let through without a budget check (COST_GUARD_FAIL_OPEN while the state is unknown)."""
        return cls(tenant_id, None, Snapshot({}, ()), Admission(None, None, None))


class BudgetStore:
    def __init__(
        self,
        redis: aioredis.Redis,
        http: httpx.AsyncClient,
        cost_url: str,
        *,
        cache_s: float,
        reservation_ttl_s: float,
        fail_open: bool = False,
        extract_output_tokens: int = 2048,
        in_flight_retry_s: int = 2,
    ) -> None:
        self.redis = redis
        self.http = http
        self.cost_url = cost_url.rstrip("/")
        self.cache_s = cache_s
        self.reservation_ttl_s = reservation_ttl_s
        # Guard policy the routes read (settings COST_GUARD_FAIL_OPEN, COST_GUARD_EXTRACT_OUTPUT_TOKENS).
        self.fail_open = fail_open
        self.extract_output_tokens = extract_output_tokens
        self.in_flight_retry_s = in_flight_retry_s
        self._reserve = redis.register_script(_RESERVE)

    @staticmethod
    def _key(tenant_id: str, part: str) -> str:
        return f"rae:budget:{tenant_id}:{part}"

    async def snapshot(self, tenant_id: str) -> Snapshot:
        key = self._key(tenant_id, "state")
        try:
            cached = await self.redis.get(key)
        except RedisError as exc:
            raise BudgetStateUnavailable(f"redis: {exc}") from exc
        if cached is not None:
            return Snapshot.from_cost(json.loads(cached))
        today = datetime.now(UTC).date().isoformat()
        try:
            answer = await self.http.get(
                f"{self.cost_url}/v1/governance/tenant/{tenant_id}",
                params={"since": today, "until": today},
                timeout=httpx.Timeout(5.0, connect=2.0),
            )
        except httpx.HTTPError as exc:
            raise BudgetStateUnavailable(f"cost service: {exc!r}") from exc
        if answer.status_code != 200:
            raise BudgetStateUnavailable(f"cost service answered {answer.status_code}")
        body = answer.json()
        state = {k: body[k] for k in ("current", "exceeded", "exceeded_limits")}
        try:
            await self.redis.set(key, json.dumps(state), px=max(1, int(self.cache_s * 1000)))
        except RedisError as exc:
            raise BudgetStateUnavailable(f"redis: {exc}") from exc
        return Snapshot.from_cost(state)

    async def forget(self, tenant_id: str) -> None:
        """Drop the cached state: the next request reads the cost service again."""
        try:
            await self.redis.delete(self._key(tenant_id, "state"))
        except RedisError as exc:  # it expires on its own after cache_s
            _log.warning("could not drop the budget state of %s: %s", tenant_id, exc)

    async def reserve(self, tenant_id: str, tokens: int) -> Reservation:
        """Reserve `tokens` for a request when the tenant has limits, and decide on it.

        A refused request's reservation is released before this returns."""
        snapshot = await self.snapshot(tenant_id)
        now = datetime.now(UTC)
        if not snapshot.limited and not snapshot.exceeded:
            return Reservation(tenant_id, None, snapshot, admit(snapshot, {}, 0, now))
        member = f"{uuid.uuid4().hex}:{tokens}"
        inflight = self._key(tenant_id, "inflight")
        expires = time.time() + self.reservation_ttl_s
        try:
            others = int(
                await self._reserve(
                    keys=[inflight],
                    args=[time.time(), expires, member, int(self.reservation_ttl_s) + 60],
                )
            )
            spent = await self._spent(tenant_id, snapshot)
        except RedisError as exc:
            raise BudgetStateUnavailable(f"redis: {exc}") from exc
        admission = admit(snapshot, spent, others, now, self.in_flight_retry_s)
        reservation = Reservation(tenant_id, member, snapshot, admission)
        if admission.refusal is not None:
            await self.release(reservation)
        return reservation

    async def _spent(self, tenant_id: str, snapshot: Snapshot) -> dict[str, tuple[int, float]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in PERIODS:
                pipe.hmget(self._key(tenant_id, f"spent:{snapshot.periods[name].key}"), ["tokens", "usd"])
            answers = await pipe.execute()
        return {
            name: (int(tokens or 0), float(usd or 0.0))
            for name, (tokens, usd) in zip(PERIODS, answers, strict=True)
        }

    async def release(self, reservation: Reservation) -> None:
        if reservation.member is None:
            return
        try:
            await self.redis.zrem(self._key(reservation.tenant_id, "inflight"), reservation.member)
        except RedisError as exc:  # it lapses on its own after reservation_ttl_s
            _log.warning("could not release a budget reservation of %s: %s", reservation.tenant_id, exc)

    async def settle(self, reservation: Reservation, usage: dict[str, Any] | None) -> None:
        """The request is over: give its reservation back and count what it reported spending."""
        if not reservation.snapshot.periods:  # let through unchecked: nothing to settle against
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                if reservation.member is not None:
                    pipe.zrem(self._key(reservation.tenant_id, "inflight"), reservation.member)
                if usage is not None:
                    for name, period in reservation.snapshot.periods.items():
                        key = self._key(reservation.tenant_id, f"spent:{period.key}")
                        pipe.hincrby(key, "tokens", int(usage.get("total_tokens", 0)))
                        pipe.hincrbyfloat(key, "usd", float(usage.get("cost_usd", 0.0)))
                        pipe.expire(key, _SPENT_TTL_S[name])
                await pipe.execute()
        except RedisError as exc:
            _log.warning("could not settle a budget reservation of %s: %s", reservation.tenant_id, exc)
