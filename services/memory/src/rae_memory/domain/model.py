"""Memories as the domain sees them: no driver, no web framework."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime, timedelta

from rae_common.contracts.memory import Layer

__all__ = ["WORKING_DEFAULT_TTL", "Layer", "content_hash", "expiry_for"]

WORKING_DEFAULT_TTL = timedelta(days=1)


def normalise(content: str) -> str:
    return " ".join(unicodedata.normalize("NFC", content).split())


def content_hash(content: str) -> str:
    """Hash of the normalised content: the same text, differently spaced, is the same memory."""
    return hashlib.sha256(normalise(content).encode()).hexdigest()


def expiry_for(layer: Layer, ttl_seconds: int | None, now: datetime) -> datetime | None:
    """`working` memories always expire (a day unless told); others only when given a TTL."""
    if ttl_seconds is not None:
        return now + timedelta(seconds=ttl_seconds)
    if layer is Layer.WORKING:
        return now + WORKING_DEFAULT_TTL
    return None
