"""The audit row's subject digest: keyed, per tenant, and absent without a key."""

from __future__ import annotations

import hashlib

from rae_memory.erasure import subject_digest


def test_the_subject_digest_needs_the_key_and_differs_per_tenant() -> None:
    key = b"k" * 32
    digest = subject_digest(key, "acme", "lena")
    assert digest is not None and len(digest) == 64
    assert digest == subject_digest(key, "acme", "lena")
    assert digest != subject_digest(key, "globex", "lena")
    assert digest != subject_digest(b"other" * 8, "acme", "lena")
    # Not a plain hash anyone could compute from a list of names.
    assert digest not in {hashlib.sha256(s.encode()).hexdigest() for s in ("lena", "acme\x00lena")}
    assert subject_digest(None, "acme", "lena") is None
