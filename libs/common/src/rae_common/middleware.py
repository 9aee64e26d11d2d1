"""Pure ASGI middlewares: request ids, the request body limit, and the last word on errors."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rae_common.errors import internal_error, problem_response

__all__ = ["BodyLimitMiddleware", "RequestIdMiddleware", "UnhandledErrorMiddleware", "current_request_id"]

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{1,128}\Z")
_request_id: ContextVar[str | None] = ContextVar("rae_request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


class RequestIdMiddleware:
    """Take the caller's `X-Request-ID` when it is sane, else mint one; echo it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == REQUEST_ID_HEADER.encode():
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = _request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


class BodyLimitMiddleware:
    """413 problem for a body over `max_bytes`: by its declared length before reading any of
    it, or by counting a streamed body (raised as an HTTPException, which FastAPI lets through
    its body parsing to the problem handlers)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await problem_response(413, self._detail(), instance=scope.get("path"))(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counting_receive, send)

    def _detail(self) -> str:
        return f"The request body exceeds the limit of {self.max_bytes} bytes."


class UnhandledErrorMiddleware:
    """Answer an error no handler took with a 500 problem, and keep the connection open.

    Starlette's outermost `ServerErrorMiddleware` answers through the `Exception` handler but then
    re-raises, so the server sees a failed request and closes the client's keep-alive connection:
    every unexpected error cost the client a reconnect. Here the error ends: logged, answered.
    An error after the response started cannot be answered any more; that one still propagates.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as exc:
            if started:
                raise
            await internal_error(scope.get("method", ""), scope.get("path", ""), exc)(scope, receive, send)
