"""API keys: `rae_<8-char prefix>_<43-char secret>`, looked up by prefix, stored as a hash.

The secret is 32 random bytes (256 bits), so a plain sha256 is enough: nothing short of the
secret itself finds a preimage, and no pepper ties the stored keys to another secret's rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rae_common.auth import SCOPES

__all__ = [
    "NewKey",
    "ParsedKey",
    "UsageThrottle",
    "generate_key",
    "hash_secret",
    "looks_like_key",
    "normalise_scopes",
    "parse_key",
    "verify_secret",
]

KEY_PREFIX = "rae_"
PREFIX_LENGTH = 8
SECRET_LENGTH = 43  # secrets.token_urlsafe(32)
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_KEY_LENGTH = len(KEY_PREFIX) + PREFIX_LENGTH + 1 + SECRET_LENGTH


@dataclass(frozen=True, slots=True)
class ParsedKey:
    prefix: str
    secret: str


@dataclass(frozen=True, slots=True)
class NewKey:
    prefix: str
    secret_hash: str
    plaintext: str


def generate_key() -> NewKey:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(32)
    return NewKey(prefix=prefix, secret_hash=hash_secret(secret), plaintext=f"{KEY_PREFIX}{prefix}_{secret}")


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX)


def parse_key(value: str) -> ParsedKey | None:
    """The prefix and secret of a well-formed key, else None."""
    if len(value) != _KEY_LENGTH or not value.startswith(KEY_PREFIX):
        return None
    prefix, separator, secret = value[len(KEY_PREFIX) :].partition("_")
    if len(prefix) != PREFIX_LENGTH or not separator or len(secret) != SECRET_LENGTH:
        return None
    if any(c not in _PREFIX_ALPHABET for c in prefix):
        return None
    return ParsedKey(prefix=prefix, secret=secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_secret(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def normalise_scopes(scopes: Iterable[str]) -> list[str]:
    """Sorted, deduplicated scopes; ValueError naming any scope that is not a known one."""
    wanted = set(scopes)
    unknown = sorted(wanted - SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known scopes are {sorted(SCOPES)}")
    return sorted(wanted)


class UsageThrottle:
    """Says when a key's `last_used_at` is worth writing: at most once per `interval_s` per key
    from this process, so a busy key costs one write a minute, not one per request."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[object, float] = {}

    def due(self, key_id: object) -> bool:
        now = self._clock()
        last = self._last.get(key_id)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[key_id] = now
        return True
