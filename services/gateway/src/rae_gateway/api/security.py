"""Credentials at the edge: a Bearer JWT or an API key -> Principal; scopes per route; the admin guard."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from rae_common.app import ServiceState, StateDep
from rae_common.auth import InvalidToken, Principal, decode_token
from rae_common.errors import ProblemError
from rae_gateway.adapters.keys import KeyStore, StoreUnavailable
from rae_gateway.domain.keys import UsageThrottle, looks_like_key, parse_key, verify_secret

__all__ = [
    "AdminDep",
    "DOCUMENTED_CREDENTIALS",
    "PrincipalDep",
    "authenticate",
    "require_admin",
    "require_scope",
]

_log = logging.getLogger("rae.gateway.security")
_REALM = 'Bearer realm="rae"'
API_KEY_HEADER = "X-API-Key"

# Declared on the routers so /openapi.json names both ways of authenticating; the parsing below
# reads the headers itself to give precise 401s.
DOCUMENTED_CREDENTIALS = [
    Security(HTTPBearer(auto_error=False, description="A JWT, an API key, or (admin API) RAE_ADMIN_TOKEN.")),
    Security(APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="An API key.")),
]


def _unauthenticated(detail: str, slug: str, error: str | None = None) -> ProblemError:
    challenge = _REALM if error is None else f'{_REALM}, error="{error}"'
    return ProblemError(401, detail, slug=slug, headers={"WWW-Authenticate": challenge})


def _credential(request: Request) -> tuple[str, str]:
    """("jwt" | "key", value) from `Authorization: Bearer` or `X-API-Key`."""
    header = request.headers.get("authorization")
    api_key = request.headers.get(API_KEY_HEADER)
    if header is not None and api_key is not None:
        raise _unauthenticated(
            f"Send one credential: 'Authorization' or '{API_KEY_HEADER}', not both.",
            "unauthenticated",
            "invalid_request",
        )
    if api_key is not None:
        return "key", api_key.strip()
    if not header:
        raise _unauthenticated(
            f"Authentication is required: send 'Authorization: Bearer <token>' or '{API_KEY_HEADER}'.",
            "unauthenticated",
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthenticated(
            "The Authorization header must use the Bearer scheme.", "unauthenticated", "invalid_request"
        )
    # API keys may also ride as a Bearer token, for clients that only know that header.
    return ("key" if looks_like_key(token) else "jwt"), token


async def _principal_from_key(state: ServiceState, value: str) -> Principal:
    parsed = parse_key(value)
    if parsed is None:
        raise _unauthenticated("The API key is malformed.", "invalid-api-key", "invalid_token")
    store: KeyStore = state.get("keys")
    try:
        row = await store.find_key(parsed.prefix)
    except StoreUnavailable as exc:
        raise ProblemError(
            503,
            "API keys cannot be checked right now.",
            slug="service-unavailable",
            headers={"Retry-After": "5"},
        ) from exc
    # No cache of positive lookups: a revoked key is refused on the very next request.
    if row is None or not verify_secret(parsed.secret, row["secret_hash"]):
        raise _unauthenticated("The API key is unknown or revoked.", "invalid-api-key", "invalid_token")
    usage: UsageThrottle = state.get("key_usage")
    if usage.due(row["id"]):
        try:
            await store.touch_key(row["id"], usage.interval_s)
        except StoreUnavailable:
            _log.warning("could not record the use of API key %s", row["id"])
    return Principal(
        subject=f"api-key:{row['id']}", tenant_id=row["tenant_id"], scopes=frozenset(row["scopes"])
    )


async def authenticate(request: Request, state: StateDep) -> Principal:
    kind, value = _credential(request)
    if kind == "key":
        principal = await _principal_from_key(state, value)
    else:
        try:
            principal = decode_token(state.settings.jwt_secret.get_secret_value(), value)
        except InvalidToken as exc:
            raise _unauthenticated(str(exc), "invalid-token", "invalid_token") from exc
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def _missing_scope(scope: str) -> ProblemError:
    return ProblemError(
        403,
        f"This credential lacks the '{scope}' scope.",
        slug="insufficient-scope",
        extensions={"required_scope": scope},
    )


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: PrincipalDep) -> Principal:
        if not principal.has(scope):
            raise _missing_scope(scope)
        return principal

    return check


async def require_admin(request: Request, state: StateDep) -> str:
    """Who acts on the admin API: the holder of RAE_ADMIN_TOKEN, or a credential with `admin`."""
    admin_token = state.settings.rae_admin_token.get_secret_value()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if (
        admin_token
        and scheme.lower() == "bearer"
        and token
        and hmac.compare_digest(token.encode(), admin_token.encode())
    ):
        return "admin-token"
    principal = await authenticate(request, state)
    if "admin" not in principal.scopes:
        raise _missing_scope("admin")
    return principal.subject


AdminDep = Annotated[str, Depends(require_admin)]
