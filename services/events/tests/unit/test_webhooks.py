"""Webhook signatures and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import random

from rae_events.domain.webhooks import backoff_s, sign, verify


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id": "1"}'
    expected = hmac.new(b"topsecret-topsecret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("topsecret-topsecret", "1700000000", body) == f"sha256={expected}"
    assert verify("topsecret-topsecret", "1700000000", body, f"sha256={expected}")
    assert not verify("topsecret-topsecret", "1700000001", body, f"sha256={expected}")
    assert not verify("another-secret-xx", "1700000000", body, f"sha256={expected}")


def test_backoff_grows_exponentially_under_its_cap_with_full_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(1, 40):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        waits = [backoff_s(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2  # spread over the whole range, not a fixed delay
    assert backoff_s(10_000, 1.0, 300.0, rng) <= 300.0
