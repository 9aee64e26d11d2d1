"""Forwarding to internal services over the one pooled httpx client."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from fastapi import Request, Response

from rae_common.app import ServiceState
from rae_common.auth import TENANT_HEADER, Principal
from rae_common.errors import ProblemError
from rae_common.middleware import current_request_id

__all__ = ["forward", "open_stream", "service_url"]

_REQUEST_HEADERS = ("content-type", "accept", "idempotency-key")
# X-Request-ID is not copied back: the gateway's own middleware sets it on every answer.
_RESPONSE_HEADERS = ("content-type", "location", "retry-after")


def service_url(state: ServiceState, service: str) -> str:
    url: str = getattr(state.settings, f"{service}_url")
    return url.rstrip("/")


def _upstream_request(
    state: ServiceState,
    request: Request,
    service: str,
    path: str,
    principal: Principal,
    body: bytes,
    extra_headers: Mapping[str, str] | None = None,
) -> httpx.Request:
    """The caller's body and query string go on untouched (a multipart boundary included); of
    the caller's headers only `_REQUEST_HEADERS` do, so a client's own `X-Tenant-ID` never does."""
    assert state.http is not None
    headers = {name: value for name in _REQUEST_HEADERS if (value := request.headers.get(name))}
    headers.update(extra_headers or {})
    headers[TENANT_HEADER] = principal.tenant_id
    if request_id := current_request_id():
        headers["x-request-id"] = request_id
    url = service_url(state, service) + path
    if request.url.query:
        url += "?" + request.url.query
    return state.http.build_request(request.method, url, content=body, headers=headers)


def _unreachable(service: str, exc: httpx.TransportError) -> ProblemError:
    if isinstance(exc, httpx.TimeoutException):
        return ProblemError(504, f"The {service} service did not answer in time.", slug="upstream-timeout")
    return ProblemError(
        503,
        f"The {service} service is unavailable.",
        slug="service-unavailable",
        extensions={"service": service},
    )


async def forward(
    state: ServiceState,
    request: Request,
    service: str,
    path: str,
    principal: Principal,
    *,
    extra_headers: Mapping[str, str] | None = None,
) -> Response:
    """Send the request on with the tenant from the credential (and the route's `extra_headers`);
    map transport failures to 503/504."""
    assert state.http is not None
    body = await request.body()
    outgoing = _upstream_request(state, request, service, path, principal, body, extra_headers)
    try:
        upstream = await state.http.send(outgoing)
    except httpx.TransportError as exc:
        raise _unreachable(service, exc) from exc
    response_headers = {name: value for name in _RESPONSE_HEADERS if (value := upstream.headers.get(name))}
    return Response(upstream.content, status_code=upstream.status_code, headers=response_headers)


async def open_stream(
    state: ServiceState, request: Request, service: str, path: str, principal: Principal
) -> httpx.Response:
    """Like `forward`, but answers as soon as the headers arrive; the caller reads and closes."""
    assert state.http is not None
    outgoing = _upstream_request(state, request, service, path, principal, await request.body())
    try:
        return await state.http.send(outgoing, stream=True)
    except httpx.TransportError as exc:
        raise _unreachable(service, exc) from exc
