"""What ``env --export`` put in a shell is the stack's own, not a choice of external servers.

After ``eval "$(python -m rae_localstack env --export)"`` the shell holds DATABASE_URL and the
other URLs of the stack's local servers. A stack started later from that shell (``make up`` after
``make down``, or the test session's stack at its own offset) would take them for external
servers. So the export also sets ``MARKER``: the name of each value the stack computed itself,
with a fingerprint of that value. A variable still holding its recorded value is ignored; one the
user set by hand (before the export, which passes it through, or after it) still counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

__all__ = ["MARKER", "mark_own", "without_exported"]

MARKER = "RAE_LOCALSTACK_EXPORTED"


def _fingerprint(value: str) -> str:
    # A prefix of a hash: tells a changed value apart without repeating a secret in the marker.
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def mark_own(values: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """``values`` plus ``MARKER`` naming those that did not come from ``env`` (the stack's own)."""
    own = sorted(name for name, value in values.items() if env.get(name) != value)
    return {**values, MARKER: " ".join(f"{name}:{_fingerprint(values[name])}" for name in own)}


def without_exported(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without ``MARKER`` and without the variables still holding the value it recorded."""
    recorded: dict[str, str] = {}
    for item in env.get(MARKER, "").split():
        name, _, fingerprint = item.partition(":")
        recorded[name] = fingerprint
    return {
        name: value
        for name, value in env.items()
        if name != MARKER and recorded.get(name) != _fingerprint(value)
    }
