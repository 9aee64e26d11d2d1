"""JWT credentials (HS256, pinned) and the tenant context every request runs in."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated

import jwt
from fastapi import Depends, Header

from rae_common.errors import ProblemError

__all__ = [
    "SCOPES",
    "InvalidToken",
    "Principal",
    "TenantDep",
    "current_tenant",
    "decode_token",
    "issue_token",
    "require_tenant",
    "validate_tenant_id",
]

ALGORITHM = "HS256"
SCOPES = frozenset(
    {
        "memories:read",
        "memories:write",
        "ml:use",
        "graph:read",
        "graph:write",
        "reflections:read",
        "reflections:write",
        "events:read",
        "events:write",
        "governance:read",
        "admin",
    }
)
TENANT_HEADER = "X-Tenant-ID"
# \A..\Z, not ^..$: `$` also matches before a trailing newline ("acme\n" would pass).
_TENANT_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_tenant: ContextVar[str | None] = ContextVar("rae_tenant", default=None)


class InvalidToken(Exception):
    """The credential is not acceptable; the message says why, for the 401 detail."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    tenant_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def validate_tenant_id(value: str) -> str:
    if not _TENANT_ID.match(value):
        raise ValueError("tenant id must be 1-64 characters of letters, digits, '.', '_' or '-'")
    return value


def issue_token(
    secret: str,
    *,
    subject: str,
    tenant_id: str,
    scopes: Iterable[str],
    ttl_s: int = 3600,
    now: float | None = None,
) -> str:
    if not secret:
        raise ValueError("JWT secret is empty")
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": subject,
        "tenant_id": validate_tenant_id(tenant_id),
        "scopes": sorted(set(scopes)),
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _why_refused(exc: jwt.InvalidTokenError) -> str:
    """The reason in our own words: the library's ("Not enough segments", "Invalid header
    padding") describe its parser, not what the caller sent wrong."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token has expired"
    if isinstance(exc, jwt.InvalidSignatureError):  # a DecodeError too: tested first
        return "token signature is invalid"
    if isinstance(exc, jwt.DecodeError):
        return "token is not a well-formed JWT"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return f"token is not signed with {ALGORITHM}"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token has no '{exc.claim}' claim"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token is not valid yet"
    return "token is invalid"


def decode_token(secret: str, token: str, *, leeway_s: int = 0) -> Principal:
    """Verify signature, algorithm and expiry; require `sub`, `tenant_id`, `scopes`, `exp`."""
    if not secret:
        raise InvalidToken("token verification is not configured")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
            leeway=leeway_s,
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(_why_refused(exc)) from exc
    tenant_id = claims.get("tenant_id")
    scopes = claims.get("scopes", [])
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(tenant_id, str) or not _TENANT_ID.match(tenant_id):
        raise InvalidToken("token has no valid tenant_id claim")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidToken("token scopes must be a list of strings")
    return Principal(subject=str(claims["sub"]), tenant_id=tenant_id, scopes=frozenset(scopes))


def current_tenant() -> str | None:
    return _tenant.get()


async def require_tenant(
    x_tenant_id: Annotated[str | None, Header(alias=TENANT_HEADER)] = None,
) -> str:
    """Internal services trust the gateway's `X-Tenant-ID`; a request without one is refused."""
    if not x_tenant_id:
        raise ProblemError(400, f"The {TENANT_HEADER} header is required.", slug="tenant-required")
    try:
        tenant_id = validate_tenant_id(x_tenant_id)
    except ValueError as exc:
        raise ProblemError(400, str(exc), slug="tenant-invalid") from exc
    _tenant.set(tenant_id)
    return tenant_id


TenantDep = Annotated[str, Depends(require_tenant)]
