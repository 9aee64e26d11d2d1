"""Limit resolution, quota arithmetic and the per-tenant overrides cache."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from rae_gateway.api.admin import LimitOverrides
from rae_gateway.domain.limits import (
    BUCKETS,
    Quota,
    TenantLimitsCache,
    limit_subject,
    quota_from_window,
    resolve_limit,
)
from rae_gateway.main import GatewaySettings

DEFAULTS = {"memories_create": 30, "search": 60, "ml_generate": 20}


def test_settings_name_every_bucket_and_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_SEARCH_PER_MIN", "7")
    monkeypatch.setenv("RATE_LIMIT_ML_GENERATE_PER_MIN", "0")
    settings = GatewaySettings(_env_file=None)
    assert settings.default_limits() == {"memories_create": 30, "search": 7, "ml_generate": 0}
    assert set(settings.default_limits()) == set(BUCKETS)
    assert set(LimitOverrides.model_fields) == set(BUCKETS)


def test_a_tenant_override_wins_over_the_default() -> None:
    assert resolve_limit("search", DEFAULTS, {}) == 60
    assert resolve_limit("search", DEFAULTS, {"search": 5, "memories_create": 1}) == 5
    assert resolve_limit("search", DEFAULTS, {"search": 0}) == 0


def test_requests_without_a_tenant_are_keyed_by_address() -> None:
    assert limit_subject("acme", "10.0.0.1") == "tenant:acme"
    assert limit_subject(None, "10.0.0.1") == "ip:10.0.0.1"
    assert limit_subject(None, "::1") == "ip:::1"
    assert limit_subject(None, None) == "ip:unknown"


def test_quota_while_room_remains_resets_when_the_oldest_request_leaves() -> None:
    quota = quota_from_window("search", 10, count=3, oldest_ms=1_000, blocking_ms=None, now_ms=31_000)
    assert quota == Quota(bucket="search", limit=10, remaining=7, reset_s=31)
    assert quota.headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "7",
        "X-RateLimit-Reset": "31",
    }
    assert not quota.exhausted


def test_an_exhausted_quota_resets_when_the_blocking_request_leaves() -> None:
    quota = quota_from_window("search", 2, count=5, oldest_ms=0, blocking_ms=50_000, now_ms=59_999)
    assert quota.remaining == 0
    assert quota.exhausted
    assert quota.reset_s == 51  # 50_000 + 60_000 + 1 - 59_999 ms, rounded up
    at_the_edge = quota_from_window("search", 1, count=1, oldest_ms=0, blocking_ms=0, now_ms=60_000)
    assert at_the_edge.reset_s == 1


def test_an_empty_window_has_nothing_to_reset() -> None:
    assert quota_from_window("search", 5, count=0, oldest_ms=None, blocking_ms=None, now_ms=1).reset_s == 0


async def test_overrides_are_cached_for_the_ttl_and_invalidated_on_write() -> None:
    now = [0.0]
    stored: dict[str, dict[str, int]] = {"acme": {"search": 5}}
    loads: list[str] = []

    async def load(tenant_id: str) -> Mapping[str, int]:
        loads.append(tenant_id)
        return dict(stored.get(tenant_id, {}))

    cache = TenantLimitsCache(load, ttl_s=5.0, clock=lambda: now[0])
    assert await cache.get("acme") == {"search": 5}
    stored["acme"] = {"search": 9}
    assert await cache.get("acme") == {"search": 5}
    assert await cache.get("unknown") == {}
    assert await cache.get("unknown") == {}
    assert loads == ["acme", "unknown"]

    now[0] = 5.1
    assert await cache.get("acme") == {"search": 9}
    stored["acme"] = {"search": 1}
    cache.invalidate("acme")
    assert await cache.get("acme") == {"search": 1}


async def test_a_zero_ttl_always_reads() -> None:
    calls = 0

    async def load(tenant_id: str) -> Mapping[str, int]:
        nonlocal calls
        calls += 1
        return {}

    cache = TenantLimitsCache(load, ttl_s=0)
    await cache.get("a")
    await cache.get("a")
    assert calls == 2
