"""Memories as the domain sees them: no driver, no web framework."""

from __future__ import annotations

import hashlib
import unicodedata
from enum import StrEnum

__all__ = ["Layer", "content_hash"]


class Layer(StrEnum):
    WORKING = "working"
    EPISODIC = "episodic"
    SEMANTIC = "semantic"
    REFLECTIVE = "reflective"


def content_hash(content: str) -> str:
    """Hash of the normalised content: the same text, differently spaced, is the same memory."""
    normalised = " ".join(unicodedata.normalize("NFC", content).split())
    return hashlib.sha256(normalised.encode()).hexdigest()
