"""The erasure contract's small rules: the actor travels intact through a header, digests are
what ml keys its cache by, and the internal requests refuse what they cannot mean."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from rae_common.contracts.erasure import (
    MAX_ACTOR_CHARS,
    EvictEmbeddings,
    ForgetMemories,
    actor_from_header,
    actor_header,
    text_digest,
)


@pytest.mark.parametrize("subject", ["key:1f2e", "José Müller", "line\nbreak", "a/b c%20", "x" * 500])
def test_any_subject_travels_in_a_header_and_comes_back(subject: str) -> None:
    value = actor_header(subject)
    assert value.isascii() and value.isprintable() and " " not in value
    assert actor_from_header(value) == subject[:MAX_ACTOR_CHARS]


def test_a_text_digest_is_the_sha256_of_its_utf8_bytes() -> None:
    assert (
        text_digest("Lena ist allergisch gegen Erdnüsse")
        == hashlib.sha256("Lena ist allergisch gegen Erdnüsse".encode()).hexdigest()
    )


@pytest.mark.parametrize(
    "body",
    [
        {"digests": []},
        {"digests": ["Lena is allergic to peanuts"]},
        {"digests": ["A" * 64]},
        {"texts": ["x"]},
    ],
)
def test_an_eviction_names_digests_only(body: dict) -> None:
    with pytest.raises(ValidationError):
        EvictEmbeddings.model_validate(body)


def test_forgetting_needs_memory_ids() -> None:
    with pytest.raises(ValidationError):
        ForgetMemories.model_validate({"memory_ids": []})
    with pytest.raises(ValidationError):
        ForgetMemories.model_validate({"memory_ids": ["not-a-uuid"]})
