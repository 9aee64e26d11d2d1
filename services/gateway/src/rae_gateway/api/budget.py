"""The cost guard on routes that spend tokens: reserve before forwarding, settle after.

An over-budget tenant gets 402 problem+json naming the period, the limit and the usage (429
`budget-reserved` with a short Retry-After when the budget is only held by requests in flight); every
guarded answer carries the remaining budget (`X-Budget-Remaining-Tokens`,
`X-Budget-Remaining-USD`, absent when that metric is unlimited). Streamed answers (SSE) pass
through chunk by chunk; their usage is read from the final `done` (or `error`) event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request, Response
from fastapi.responses import StreamingResponse

from rae_common.app import ServiceState, StateDep
from rae_common.auth import Principal
from rae_common.errors import ProblemError
from rae_gateway.adapters.budget import BudgetStateUnavailable, BudgetStore, Reservation
from rae_gateway.api.models import problems
from rae_gateway.api.proxy import forward, open_stream
from rae_gateway.domain.budget import BudgetRefusal

__all__ = ["BUDGET_HELD", "BudgetDep", "guarded_forward"]

_log = logging.getLogger("rae.gateway.budget")


# The 429 of a budget-guarded route without a rate limit (so without quota headers).
BUDGET_HELD: dict[int | str, dict[str, Any]] = {
    429: {
        **problems(429)[429],
        "description": "`budget-reserved`: the budget is held by requests in flight (see `Retry-After`).",
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    }
}


async def _store(state: StateDep) -> BudgetStore:
    store: BudgetStore = state.get("budget")
    return store


BudgetDep = Annotated[BudgetStore, Depends(_store)]


async def _reserve(store: BudgetStore, tenant_id: str, tokens: int) -> Reservation:
    try:
        reservation = await store.reserve(tenant_id, tokens)
    except BudgetStateUnavailable as exc:
        if store.fail_open:
            _log.warning("budget state unavailable, letting %s through: %s", tenant_id, exc)
            return Reservation.unchecked(tenant_id)
        raise ProblemError(
            503,
            "The tenant's budget cannot be checked right now; nothing was spent.",
            slug="budget-unavailable",
        ) from exc
    refusal = reservation.admission.refusal
    if refusal is not None:
        raise _refused(tenant_id, refusal, tokens)
    return reservation


def _refused(tenant_id: str, refusal: BudgetRefusal, tokens: int) -> ProblemError:
    limit = refusal.limit if refusal.metric == "usd" else int(refusal.limit)
    used = round(refusal.used, 6) if refusal.metric == "usd" else int(refusal.used)
    period = "daily" if refusal.period == "day" else "monthly"
    budget = f"The {period} {refusal.metric} budget of tenant {tenant_id}"
    facts = {"period": refusal.period, "metric": refusal.metric, "limit": limit, "used": used}
    headers = {"Retry-After": str(refusal.retry_after_s)}
    if refusal.in_flight:
        # Not spent: held by requests still running, which give back what they do not use. A 429
        # (not 402, which says "spent until the period ends") so clients retry it as they retry
        # any 429 with Retry-After.
        return ProblemError(
            429,
            f"{budget} is held by requests in flight: {used} of {limit} used, {refusal.reserved} "
            f"reserved until they finish, {tokens} asked for by this request; retry in "
            f"{refusal.retry_after_s} s.",
            slug="budget-reserved",
            headers=headers,
            extensions={**facts, "reserved": refusal.reserved, "requested": tokens},
        )
    return ProblemError(
        402,
        f"{budget} is spent ({used} of {limit}).",
        slug="budget-exceeded",
        headers=headers,
        extensions=facts,
    )


def _budget_headers(reservation: Reservation, usage: dict[str, Any] | None) -> dict[str, str]:
    """What remains once this request's own reported spend is taken off."""
    spent_tokens = int(usage.get("total_tokens", 0)) if usage else 0
    spent_usd = float(usage.get("cost_usd", 0.0)) if usage else 0.0
    headers = {}
    admission = reservation.admission
    if admission.remaining_tokens is not None:
        headers["X-Budget-Remaining-Tokens"] = str(max(0, admission.remaining_tokens - spent_tokens))
    if admission.remaining_usd is not None:
        headers["X-Budget-Remaining-USD"] = f"{max(0.0, admission.remaining_usd - spent_usd):.6f}"
    return headers


def _usage_of(body: bytes) -> dict[str, Any] | None:
    try:
        usage = json.loads(body).get("usage")
    except (ValueError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None


async def guarded_forward(
    state: ServiceState,
    request: Request,
    service: str,
    path: str,
    principal: Principal,
    *,
    reserve_tokens: int,
    stream: bool = False,
) -> Response:
    """Forward a token-spending request if the tenant's budget allows `reserve_tokens` more."""
    store = await _store(state)
    reservation = await _reserve(store, principal.tenant_id, reserve_tokens)
    if stream:
        try:
            upstream = await open_stream(state, request, service, path, principal)
        except BaseException:
            await store.release(reservation)
            raise
        if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
            body = await upstream.aread()
            await upstream.aclose()
            usage = _usage_of(body)
            await store.settle(reservation, usage)
            return Response(body, upstream.status_code, headers=_passed_headers(upstream, reservation, usage))
        return StreamingResponse(
            _relay(upstream, store, reservation),
            status_code=upstream.status_code,
            headers=_passed_headers(upstream, reservation, None),
        )
    try:
        response = await forward(state, request, service, path, principal)
    except BaseException:
        await store.release(reservation)
        raise
    usage = _usage_of(bytes(response.body)) if response.status_code == 200 else None
    await store.settle(reservation, usage)
    response.headers.update(_budget_headers(reservation, usage))
    return response


_STREAM_HEADERS = ("content-type", "cache-control", "retry-after")


def _passed_headers(
    upstream: httpx.Response, reservation: Reservation, usage: dict[str, Any] | None
) -> dict[str, str]:
    headers = {k: v for k in _STREAM_HEADERS if (v := upstream.headers.get(k))}
    return headers | _budget_headers(reservation, usage)


async def _relay(
    upstream: httpx.Response, store: BudgetStore, reservation: Reservation
) -> AsyncIterator[bytes]:
    """Pass the event stream on as it comes; settle with the usage of its last event."""
    scanner = _SseUsage()
    try:
        async for chunk in upstream.aiter_raw():
            scanner.feed(chunk)
            yield chunk
    finally:
        await upstream.aclose()
        await store.settle(reservation, scanner.usage)


class _SseUsage:
    """Finds the `usage` of a stream's `done` or `error` event, whatever the chunking."""

    def __init__(self) -> None:
        self._buffer = b""
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            self._event(block.decode("utf-8", errors="replace"))
        if len(self._buffer) > 1 << 20:  # a malformed stream must not grow the buffer without end
            self._buffer = b""

    def _event(self, block: str) -> None:
        event, data = "message", []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        if event in ("done", "error") and data:
            usage = _usage_of("\n".join(data).encode())
            if usage is not None:
                self.usage = usage
