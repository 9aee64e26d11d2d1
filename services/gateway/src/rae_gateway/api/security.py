"""Credentials at the edge: a Bearer JWT or an API key -> Principal; scopes per route; the admin guards.

Two kinds of administration, never mixed:
- platform administration (`AdminDep`): creating and listing tenants, setting any tenant's rate
  limits and budget, every cross-tenant view. Only the holder of `RAE_ADMIN_TOKEN` does this.
- a tenant's own administration (`TenantAdminDep`): the `admin` scope on a tenant's JWT or API
  key administers THAT tenant (its record, its API keys; it reads its limits). A route naming
  another tenant in its path is refused (403) before anything is read, so nothing about the
  other tenant, not even whether it exists, shows.
"""

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
    "TenantAdminDep",
    "authenticate",
    "missing_scope",
    "platform_admin",
    "require_admin",
    "require_scope",
    "require_tenant_admin",
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


async def _authenticate(request: Request, state: ServiceState, *, refused: str) -> Principal:
    kind, value = _credential(request)
    if kind == "key":
        principal = await _principal_from_key(state, value)
    else:
        try:
            principal = decode_token(state.settings.jwt_secret.get_secret_value(), value)
        except InvalidToken as exc:
            raise _unauthenticated(f"{refused}: {exc}.", "invalid-token", "invalid_token") from exc
    request.state.principal = principal
    return principal


async def authenticate(request: Request, state: StateDep) -> Principal:
    return await _authenticate(request, state, refused="The bearer token is not accepted")


# On the admin routes a refused bearer token may have been meant as the platform admin token.
_ADMIN_REFUSED = "The bearer token is neither the platform admin token nor an accepted JWT"


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def missing_scope(scope: str) -> ProblemError:
    return ProblemError(
        403,
        f"This credential lacks the '{scope}' scope.",
        slug="insufficient-scope",
        extensions={"required_scope": scope},
    )


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: PrincipalDep) -> Principal:
        if not principal.has(scope):
            raise missing_scope(scope)
        return principal

    return check


PLATFORM_ADMIN = "admin-token"  # the actor named in logs for RAE_ADMIN_TOKEN


def platform_admin(request: Request, state: ServiceState) -> bool:
    """Whether the request carries `Authorization: Bearer <RAE_ADMIN_TOKEN>` (empty: disabled)."""
    admin_token = state.settings.rae_admin_token.get_secret_value()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return bool(
        admin_token
        and scheme.lower() == "bearer"
        and token
        and hmac.compare_digest(token.encode(), admin_token.encode())
    )


def _platform_only(detail: str) -> ProblemError:
    return ProblemError(403, detail, slug="platform-admin-required")


async def require_admin(request: Request, state: StateDep) -> str:
    """Platform administration: the holder of RAE_ADMIN_TOKEN, and no one else.

    Any other credential is authenticated first, so a wrong or expired one is a 401; a valid
    tenant credential (its `admin` scope included) is a 403: its tenant is not the platform."""
    if platform_admin(request, state):
        return PLATFORM_ADMIN
    await _authenticate(request, state, refused=_ADMIN_REFUSED)
    raise _platform_only(
        "This is platform administration: it needs the platform admin token (RAE_ADMIN_TOKEN). "
        "A tenant's 'admin' scope administers its own tenant only."
    )


AdminDep = Annotated[str, Depends(require_admin)]


async def require_tenant_admin(tenant_id: str, request: Request, state: StateDep) -> str:
    """Administration of the tenant named in the path: the platform, or that tenant's `admin`."""
    if platform_admin(request, state):
        return PLATFORM_ADMIN
    principal = await _authenticate(request, state, refused=_ADMIN_REFUSED)
    if "admin" not in principal.scopes:
        raise missing_scope("admin")
    if principal.tenant_id != tenant_id:
        raise ProblemError(
            403,
            "A tenant's 'admin' scope administers its own tenant only.",
            slug="other-tenant",
        )
    return principal.subject


TenantAdminDep = Annotated[str, Depends(require_tenant_admin)]
