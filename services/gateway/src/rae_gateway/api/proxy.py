"""Forwarding to internal services over the one pooled httpx client."""

from __future__ import annotations

import httpx
from fastapi import Request, Response

from rae_common.app import ServiceState
from rae_common.auth import TENANT_HEADER, Principal
from rae_common.errors import ProblemError

__all__ = ["forward"]

_REQUEST_HEADERS = ("content-type", "accept", "idempotency-key", "x-request-id")
_RESPONSE_HEADERS = ("content-type", "location", "retry-after", "x-request-id")


def service_url(state: ServiceState, service: str) -> str:
    url: str = getattr(state.settings, f"{service}_url")
    return url.rstrip("/")


async def forward(
    state: ServiceState, request: Request, service: str, path: str, principal: Principal
) -> Response:
    """Send the request on with the tenant from the credential; map transport failures to 503."""
    assert state.http is not None
    headers = {name: value for name in _REQUEST_HEADERS if (value := request.headers.get(name))}
    headers[TENANT_HEADER] = principal.tenant_id
    try:
        upstream = await state.http.request(
            request.method,
            service_url(state, service) + path,
            params=str(request.query_params),
            content=await request.body(),
            headers=headers,
        )
    except httpx.TimeoutException as exc:
        raise ProblemError(
            504, f"The {service} service did not answer in time.", slug="upstream-timeout"
        ) from exc
    except httpx.TransportError as exc:
        raise ProblemError(
            503,
            f"The {service} service is unavailable.",
            slug="service-unavailable",
            headers={"Retry-After": "5"},
            extensions={"service": service},
        ) from exc
    response_headers = {name: value for name in _RESPONSE_HEADERS if (value := upstream.headers.get(name))}
    return Response(upstream.content, status_code=upstream.status_code, headers=response_headers)
