"""Metering of every model call: its span, its cost, its metrics and its `llm.usage` event.

The event goes through the outbox (one INSERT; the relay publishes it to `rae.ml.v1`), so a
broker outage delays it and loses nothing. The request id is its idempotency key: the cost
service counts a retried request once.

Embedding calls are rolled up (`rae_ml.domain.rollup`): their usage is summed per tenant and
model and queued as one event per window (`calls` says how many), off the request's path. A
crash loses at most the last window's sums; a failed write keeps them for the next window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Tracer
from prometheus_client import CollectorRegistry, Counter

from rae_common.contracts.ml import Usage
from rae_common.events import Envelope, LlmUsage, new_envelope
from rae_common.outbox import add_to_outbox
from rae_ml.domain.pricing import PriceTable
from rae_ml.domain.rollup import RollupKey, Tally, UsageRollup

__all__ = ["CallContext", "Meter", "UsageLedger", "UsageMetrics"]

_log = logging.getLogger("rae.ml.usage")

# GenAI semantic conventions name the operation by the API's shape, not by our route.
_GEN_AI_OPERATION = {"generate": "chat", "extract": "chat", "embed": "embeddings"}


@dataclass(frozen=True, slots=True)
class CallContext:
    tenant_id: str
    request_id: str


class UsageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter(
            "rae_ml_tokens",
            "Tokens of model calls, by provider, model and direction (prompt|completion)",
            ["provider", "model", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "rae_ml_cost_usd",
            "USD of model calls, by provider and model",
            ["provider", "model"],
            registry=registry,
        )
        self.unpriced = Counter(
            "rae_ml_unpriced_calls",
            "Calls of a model the pricing file has no price for (counted at 0 USD)",
            ["provider", "model"],
            registry=registry,
        )
        self.unrecorded = Counter(
            "rae_ml_usage_unrecorded",
            "llm.usage events that could not be written to the outbox (Postgres down)",
            registry=registry,
        )
        self.rolled_up = Counter(
            "rae_ml_usage_rolled_up_calls",
            "Calls whose usage was summed into a rolled-up llm.usage event, by operation",
            ["operation"],
            registry=registry,
        )


class Meter:
    """Collects a call's token counts; `usage` is set once the ledger recorded them."""

    def __init__(self, span: Span) -> None:
        self.span = span
        self.prompt_tokens: int | None = None
        self.completion_tokens = 0
        self.estimated = False
        self.usage: Usage | None = None

    def count(self, prompt_tokens: int, completion_tokens: int, *, estimated: bool) -> None:
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.estimated = estimated


class UsageLedger:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        wake_relay: Callable[[], None],
        prices: PriceTable,
        metrics: UsageMetrics,
        tracer: Tracer,
        *,
        producer: str,
        rollup_window_s: float = 0.0,
        rollup_operations: frozenset[str] = frozenset({"embed"}),
    ) -> None:
        """`rollup_window_s` > 0 sums the usage of `rollup_operations` into one event per tenant,
        operation and model every that many seconds (while `rolling_up` runs); 0: one per call."""
        self.pool = pool
        self.schema = schema
        self.wake_relay = wake_relay
        self.prices = prices
        self.metrics = metrics
        self.tracer = tracer
        self.producer = producer
        self.rollup_window_s = rollup_window_s
        self.rollup_operations = rollup_operations if rollup_window_s > 0 else frozenset[str]()
        self._rollup = UsageRollup()
        self._warned_unpriced: set[str] = set()

    def start_span(self, operation: str, provider: str, model: str, **attributes: Any) -> Span:
        """A client span for one model call, child of the current (request) span."""
        return self.tracer.start_span(
            f"{_GEN_AI_OPERATION[operation]} {model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": _GEN_AI_OPERATION[operation],
                "gen_ai.request.model": model,
                "gen_ai.system": provider,
                "gen_ai.provider.name": provider,
                "rae.operation": operation,
                **{k: v for k, v in attributes.items() if v is not None},
            },
        )

    @contextlib.asynccontextmanager
    async def metered(
        self, ctx: CallContext, operation: str, provider: str, model: str, **attributes: Any
    ) -> AsyncIterator[Meter]:
        """Run a call in its span; once the body counted tokens (`meter.count`), record them,
        also when the body then fails (the provider was paid for an answer we reject)."""
        span = self.start_span(operation, provider, model, **attributes)
        meter = Meter(span)
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=True, set_status_on_exception=True):
                try:
                    yield meter
                finally:
                    if meter.prompt_tokens is not None:
                        meter.usage = await self.record(
                            ctx,
                            operation,
                            provider,
                            model,
                            meter.prompt_tokens,
                            meter.completion_tokens,
                            estimated=meter.estimated,
                            span=span,
                        )
        finally:
            span.end()

    async def record(
        self,
        ctx: CallContext,
        operation: str,
        provider: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        estimated: bool,
        span: Span,
    ) -> Usage:
        """Price the call, annotate its span, count it, and queue its `llm.usage` event."""
        cost = self.prices.cost(provider, model, prompt_tokens, completion_tokens)
        if not cost.priced:
            self.metrics.unpriced.labels(provider, model).inc()
            if f"{provider}/{model}" not in self._warned_unpriced:
                self._warned_unpriced.add(f"{provider}/{model}")
                _log.warning(
                    "no price for %s/%s in pricing file %s: its calls count 0 USD",
                    provider,
                    model,
                    self.prices.version,
                )
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            cost_usd=cost.usd,
            model=model,
            provider=provider,
            estimated=estimated,
        )
        span.set_attributes(
            {
                "gen_ai.usage.input_tokens": prompt_tokens,
                "gen_ai.usage.output_tokens": completion_tokens,
                "rae.cost_usd": cost.usd,
                "rae.usage.estimated": estimated,
                "rae.pricing.version": self.prices.version,
            }
        )
        self.metrics.tokens.labels(provider, model, "prompt").inc(prompt_tokens)
        self.metrics.tokens.labels(provider, model, "completion").inc(completion_tokens)
        self.metrics.cost.labels(provider, model).inc(cost.usd)
        if usage.total_tokens == 0:
            # Nothing was used (every vector came from the cache): no event, no write on the
            # request's path, nothing for the cost service and the event engine to process.
            return usage
        if operation in self.rollup_operations:
            self._rollup.add(
                RollupKey(ctx.tenant_id, operation, provider, model, estimated),
                prompt_tokens,
                completion_tokens,
                cost.usd,
            )
            self.metrics.rolled_up.labels(operation).inc()
            span.set_attribute("rae.usage.rolled_up", True)
            return usage
        context = span.get_span_context()
        event = self._event(
            ctx.tenant_id,
            LlmUsage(
                request_id=ctx.request_id,
                operation=operation,
                model=model,
                provider=provider,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=cost.usd,
                estimated=estimated,
                trace_id=format(context.trace_id, "032x") if context.is_valid else None,
            ),
        )
        # Shielded: a client that hangs up mid-stream must not cancel the write of what it used.
        await asyncio.shield(self._queue(event, span))
        return usage

    async def _queue(self, event: Envelope, span: Span) -> None:
        try:
            with trace.use_span(span, end_on_exit=False):
                async with self.pool.acquire() as conn:
                    await add_to_outbox(conn, self.schema, event)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The answer is already paid for; failing it would make the client pay again.
            self.metrics.unrecorded.inc()
            _log.error("llm.usage of request %s not recorded: %s", event.idempotency_key, exc)
            return
        self.wake_relay()

    # --- roll-up ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def rolling_up(self) -> AsyncIterator[None]:
        """Queue the rolled-up usage every window while the body runs, and what is left at the end."""
        task = None
        if self.rollup_operations:
            task = asyncio.create_task(self._flush_every_window(), name="llm.usage roll-up")
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.flush()
            if lost := self._rollup.calls:
                self.metrics.unrecorded.inc(len(self._rollup.drain()))
                _log.error("rolled-up llm.usage of %d calls not recorded at shutdown", lost)

    async def flush(self) -> int:
        """Queue one `llm.usage` event per tenant, operation and model of the calls summed since
        the last flush; the number of events. A failed write keeps the sums for the next one."""
        drained = self._rollup.drain()
        if not drained:
            return 0
        events = [self._rolled_up_event(key, tally) for key, tally in drained.items()]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await add_to_outbox(conn, self.schema, *events)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._rollup.restore(drained)
            _log.warning("rolled-up llm.usage not recorded yet, kept for the next window: %s", exc)
            return 0
        except BaseException:
            self._rollup.restore(drained)  # cancelled mid-write: the final flush records them
            raise
        self.wake_relay()
        return len(events)

    async def _flush_every_window(self) -> None:
        while True:
            await asyncio.sleep(self.rollup_window_s)
            try:
                await self.flush()
            except Exception:  # the sums were restored; the next window tries again
                _log.exception("rolled-up llm.usage flush failed")

    def _event(self, tenant_id: str, usage: LlmUsage) -> Envelope:
        """The `llm.usage` envelope of `usage`; its usage id is the idempotency key, so the cost
        service counts it once however often it is delivered."""
        return new_envelope(
            "llm.usage", usage, tenant_id=tenant_id, producer=self.producer, idempotency_key=usage.request_id
        )

    def _rolled_up_event(self, key: RollupKey, tally: Tally) -> Envelope:
        return self._event(
            key.tenant_id,
            LlmUsage(
                request_id=f"rollup.{uuid.uuid4().hex}",
                operation=key.operation,
                model=key.model,
                provider=key.provider,
                prompt_tokens=tally.prompt_tokens,
                completion_tokens=tally.completion_tokens,
                cost_usd=tally.cost_usd,
                estimated=key.estimated,
                calls=tally.calls,
            ),
        )
