"""RFC 9457 problem details: every error a service answers is `application/problem+json`."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "DEFAULT_RETRY_AFTER_S",
    "PROBLEM_CONTENT_TYPE",
    "DependencyUnavailable",
    "ProblemError",
    "install_problem_handlers",
    "internal_error",
    "problem_response",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://rae.dev/problems/"
# What a 503 tells the client to wait when the code answering it names nothing better: every 503
# says when to come back, so clients back off instead of retrying at once.
DEFAULT_RETRY_AFTER_S = 5

_log = logging.getLogger("rae.errors")

# Stable problem `type` slugs for the statuses the framework raises on its own.
_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal-error",
    502: "bad-gateway",
    503: "service-unavailable",
    504: "gateway-timeout",
}


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.slug = slug or _SLUGS.get(status, f"http-{status}")
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extensions = extensions or {}


class DependencyUnavailable(Exception):
    """A dependency (a database, a broker, another service) cannot serve the request right now.

    Raised by adapters and services; the problem handlers answer it with a 503 carrying
    `Retry-After: retry_after_s`, so no route maps it by hand."""

    def __init__(self, detail: str, *, dependency: str, retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> None:
        super().__init__(detail)
        self.detail = detail
        self.dependency = dependency
        self.retry_after_s = retry_after_s


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    slug: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or _SLUGS.get(status, f"http-{status}")),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    for key, value in (extensions or {}).items():
        body.setdefault(key, value)
    if status == 503 and not any(name.lower() == "retry-after" for name in headers or {}):
        headers = {**(headers or {}), "Retry-After": str(DEFAULT_RETRY_AFTER_S)}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The offending input is left out on purpose: it may be large or hold secrets.
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
    """Map every exception a request can raise to a problem document, never a stack trace."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(
            exc.status,
            exc.detail,
            slug=exc.slug,
            title=exc.title,
            instance=request.url.path,
            headers=exc.headers,
            extensions=exc.extensions,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail: str | None = exc.detail if isinstance(exc.detail, str) else None
        if detail == HTTPStatus(exc.status_code).phrase:
            detail = None
        return problem_response(
            exc.status_code,
            detail,
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(
            422,
            "The request is not valid.",
            instance=request.url.path,
            extensions={"errors": _validation_errors(exc)},
        )

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DependencyUnavailable)
        _log.warning("%s %s: %s", request.method, request.url.path, exc.detail)
        return problem_response(
            503,
            exc.detail,
            slug="dependency-unavailable",
            instance=request.url.path,
            headers={"Retry-After": str(exc.retry_after_s)},
            extensions={"dependency": exc.dependency},
        )

    async def on_unhandled(request: Request, exc: Exception) -> JSONResponse:
        # Reached only for errors raised outside `UnhandledErrorMiddleware` (in an outer
        # middleware): Starlette then closes the connection after this answer.
        return internal_error(request.method, request.url.path, exc)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(DependencyUnavailable, on_unavailable)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unhandled)


def internal_error(method: str, path: str, exc: BaseException) -> JSONResponse:
    """Log an unexpected error with its stack and answer a 500 problem without it."""
    _log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return problem_response(500, "An internal error occurred; it has been logged.", instance=path)
