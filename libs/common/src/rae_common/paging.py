"""Opaque keyset cursors for `{"items": [...], "next_cursor": ...}` lists."""

from __future__ import annotations

import base64
import binascii
import json

from rae_common.errors import ProblemError

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(*parts: str) -> str:
    """The key of the last item of a page, as a URL-safe token."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The `size` parts of a cursor `encode_cursor` made; 422 problem for anything else."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise invalid_cursor() from exc
    if not isinstance(parts, list) or len(parts) != size or not all(isinstance(p, str) for p in parts):
        raise invalid_cursor()
    return parts


def invalid_cursor() -> ProblemError:
    return ProblemError(422, "The cursor is not valid.", slug="invalid-cursor")
