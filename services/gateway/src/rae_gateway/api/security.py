"""Credentials at the edge: Bearer JWT -> Principal; scopes checked per route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from rae_common.app import StateDep
from rae_common.auth import InvalidToken, Principal, decode_token
from rae_common.errors import ProblemError

__all__ = ["PrincipalDep", "authenticate", "require_scope"]

_REALM = 'Bearer realm="rae"'


async def authenticate(request: Request, state: StateDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ProblemError(
            401,
            "Authentication is required: send 'Authorization: Bearer <token>'.",
            slug="unauthenticated",
            headers={"WWW-Authenticate": _REALM},
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(
            401,
            "The Authorization header must use the Bearer scheme.",
            slug="unauthenticated",
            headers={"WWW-Authenticate": f'{_REALM}, error="invalid_request"'},
        )
    try:
        principal = decode_token(state.settings.jwt_secret.get_secret_value(), token.strip())
    except InvalidToken as exc:
        raise ProblemError(
            401,
            str(exc),
            slug="invalid-token",
            headers={"WWW-Authenticate": f'{_REALM}, error="invalid_token"'},
        ) from exc
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: PrincipalDep) -> Principal:
        if not principal.has(scope):
            raise ProblemError(
                403,
                f"This credential lacks the '{scope}' scope.",
                slug="insufficient-scope",
                extensions={"required_scope": scope},
            )
        return principal

    return check
