"""API key format, hashing, scopes and the last-use throttle."""

from __future__ import annotations

import pytest

from rae_gateway.domain.keys import (
    UsageThrottle,
    generate_key,
    hash_secret,
    normalise_scopes,
    parse_key,
    verify_secret,
)


def test_a_new_key_parses_back_and_verifies_against_its_hash() -> None:
    key = generate_key()
    assert key.plaintext.startswith(f"rae_{key.prefix}_")
    parsed = parse_key(key.plaintext)
    assert parsed is not None
    assert parsed.prefix == key.prefix
    assert verify_secret(parsed.secret, key.secret_hash)
    assert parsed.secret not in key.secret_hash
    wrong = parsed.secret[:-1] + ("A" if parsed.secret[-1] != "A" else "B")
    assert not verify_secret(wrong, key.secret_hash)


def test_keys_are_distinct() -> None:
    keys = {generate_key().plaintext for _ in range(200)}
    assert len(keys) == 200


@pytest.mark.parametrize(
    "value",
    [
        "",
        "rae_",
        "sk_abcdefgh_" + "a" * 43,
        "rae_ABCDEFGH_" + "a" * 43,  # the prefix is lower-case alphanumeric
        "rae_abcdefg_" + "a" * 44,  # 7-char prefix
        "rae_abcdefgh_" + "a" * 42,
        "rae_abcdefgh-" + "a" * 43,
    ],
)
def test_malformed_keys_do_not_parse(value: str) -> None:
    assert parse_key(value) is None


def test_a_secret_may_contain_the_separator() -> None:
    secret = "_" * 43
    parsed = parse_key("rae_abcdefgh_" + secret)
    assert parsed is not None
    assert parsed.secret == secret
    assert verify_secret(secret, hash_secret(secret))


def test_scopes_are_known_sorted_and_unique() -> None:
    assert normalise_scopes(["memories:write", "memories:read", "memories:write"]) == [
        "memories:read",
        "memories:write",
    ]
    with pytest.raises(ValueError, match="root"):
        normalise_scopes(["memories:read", "root"])


def test_usage_is_written_at_most_once_per_interval() -> None:
    now = [1000.0]
    throttle = UsageThrottle(60.0, clock=lambda: now[0])
    assert throttle.due("a")
    assert not throttle.due("a")
    assert throttle.due("b")
    now[0] += 59.9
    assert not throttle.due("a")
    now[0] += 0.2
    assert throttle.due("a")
