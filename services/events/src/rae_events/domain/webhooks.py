"""Webhook signatures and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import random

__all__ = ["backoff_s", "sign", "verify"]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`X-RAE-Signature`: HMAC-SHA256 of `{timestamp}.{body}`; the timestamp is signed too, so a
    receiver can refuse an old request replayed at it."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (in constant time)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Wait before the try after failed `attempt` (1-based): exponential with full jitter, so
    receivers that come back are not hit by every retry at the same instant."""
    ceiling = min(max_s, base_s * 2 ** min(attempt - 1, 62))
    return rng.uniform(0, ceiling)
