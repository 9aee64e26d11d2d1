"""JWT: HS256 pinned, expiry checked, required claims enforced."""

from __future__ import annotations

import time

import jwt
import pytest

from rae_common.auth import InvalidToken, decode_token, issue_token, validate_tenant_id

SECRET = "unit-test-secret-" + "x" * 64


def test_roundtrip_gives_principal() -> None:
    token = issue_token(SECRET, subject="agent-1", tenant_id="acme", scopes=["memories:read"])
    principal = decode_token(SECRET, token)
    assert principal.subject == "agent-1"
    assert principal.tenant_id == "acme"
    assert principal.has("memories:read")
    assert not principal.has("memories:write")


def test_admin_scope_implies_every_scope() -> None:
    principal = decode_token(SECRET, issue_token(SECRET, subject="a", tenant_id="t", scopes=["admin"]))
    assert principal.has("events:write")


def test_expired_token_is_rejected() -> None:
    token = issue_token(SECRET, subject="a", tenant_id="t", scopes=[], ttl_s=10, now=time.time() - 60)
    with pytest.raises(InvalidToken, match="expired"):
        decode_token(SECRET, token)


def test_wrong_secret_is_rejected() -> None:
    token = issue_token("another-secret-entirely-xxxxxxxxxx", subject="a", tenant_id="t", scopes=[])
    with pytest.raises(InvalidToken, match="invalid"):
        decode_token(SECRET, token)


@pytest.mark.parametrize("algorithm", ["HS512", "HS384"])
def test_other_algorithms_are_rejected(algorithm: str) -> None:
    claims = {"sub": "a", "tenant_id": "t", "scopes": [], "exp": int(time.time()) + 60}
    token = jwt.encode(claims, SECRET, algorithm=algorithm)
    with pytest.raises(InvalidToken):
        decode_token(SECRET, token)


def test_unsigned_token_is_rejected() -> None:
    claims = {"sub": "a", "tenant_id": "t", "scopes": [], "exp": int(time.time()) + 60}
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(InvalidToken):
        decode_token(SECRET, token)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "a", "scopes": []},
        {"sub": "a", "tenant_id": "bad tenant!", "scopes": []},
        {"tenant_id": "t", "scopes": []},
        {"sub": "a", "tenant_id": "t", "scopes": [1, 2]},
    ],
)
def test_missing_or_bad_claims_are_rejected(claims: dict) -> None:
    token = jwt.encode({**claims, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        decode_token(SECRET, token)


def test_token_without_exp_is_rejected() -> None:
    token = jwt.encode({"sub": "a", "tenant_id": "t", "scopes": []}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        decode_token(SECRET, token)


def test_empty_secret_never_verifies() -> None:
    token = issue_token(SECRET, subject="a", tenant_id="t", scopes=[])
    with pytest.raises(InvalidToken, match="not configured"):
        decode_token("", token)


@pytest.mark.parametrize("value", ["", "a b", "x" * 65, "-leading", "tenant/1"])
def test_invalid_tenant_ids(value: str) -> None:
    with pytest.raises(ValueError):
        validate_tenant_id(value)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-jwt", "token is not a well-formed JWT"),
        ("a.b", "token is not a well-formed JWT"),
        ("x.y.z", "token is not a well-formed JWT"),
        (jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, "other-" * 10), "token signature is invalid"),
        (jwt.encode({"sub": "a"}, SECRET), "token has no 'exp' claim"),
        (jwt.encode({"sub": "a", "exp": 2**40}, SECRET, algorithm="HS512"), "token is not signed with HS256"),
        (
            jwt.encode({"sub": "a", "exp": 2**40, "nbf": 2**40 - 1}, SECRET),
            "token is not valid yet",
        ),
    ],
)
def test_refusals_are_explained_in_our_own_words(token: str, reason: str) -> None:
    with pytest.raises(InvalidToken) as refused:
        decode_token(SECRET, token)
    assert str(refused.value) == reason
