"""The webhook delivery worker: POSTs due webhooks, retries failures with backoff, parks the
ones that used up their attempts on the dead-letter topic.

Deliveries are claimed with `FOR UPDATE SKIP LOCKED` and leased for the request's time, so
replicas share the queue and a crashed worker's deliveries are tried again once the lease is over.
Delivery is at-least-once: receivers dedupe on `X-RAE-Delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from rae_common.background import BackgroundLoop
from rae_common.events import TOPIC_DLQ
from rae_common.messaging import KafkaPublisher, OutgoingRecord
from rae_common.telemetry import extract_context, inject_context
from rae_events.adapters import repository as repo
from rae_events.adapters.dead_letters import DLQ_HEADER_PREFIX, FIRING_HEADER
from rae_events.domain.webhooks import backoff_s, sign
from rae_events.metrics import EventsMetrics

__all__ = ["DELIVERY_GROUP", "DeliveryWorker"]

_log = logging.getLogger("rae.events.delivery")

# Names the webhook deliveries as the "consumer group" of their dead letters.
DELIVERY_GROUP = "events-webhooks"


class DeliveryWorker(BackgroundLoop):
    def __init__(
        self,
        pool: asyncpg.Pool,
        http: httpx.AsyncClient,
        publisher: KafkaPublisher,
        metrics: EventsMetrics,
        *,
        timeout_s: float,
        backoff_base_s: float,
        backoff_max_s: float,
        batch_size: int,
        poll_interval_s: float,
        tracer_provider: TracerProvider | None = None,
        rng: random.Random | None = None,
        stop_timeout_s: float = 3.0,
    ) -> None:
        self.pool = pool
        self.http = http
        self.publisher = publisher
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self._tracer = trace.get_tracer("rae.events.delivery", tracer_provider=tracer_provider)
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        super().__init__(task_name="webhook-delivery", stop_timeout_s=stop_timeout_s)

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll (call after commit)."""
        self._wake.set()

    def request_stop(self) -> None:
        super().request_stop()
        self._wake.set()

    async def run_once(self) -> int:
        """Try every due delivery (up to a batch, concurrently), then park dead ones on the DLQ
        topic. Returns how many deliveries were tried."""
        # The lease outlasts the request, so nobody else takes a delivery while it is in flight.
        deliveries = await repo.claim_due(self.pool, self.batch_size, self.timeout_s + 5.0)
        await asyncio.gather(*(self._deliver(d) for d in deliveries))
        try:
            await repo.publish_dead(self.pool, self._send_dead, self.batch_size)
        except Exception as exc:
            _log.warning("cannot park dead webhooks on %s yet: %s", TOPIC_DLQ, exc)
        return len(deliveries)

    async def _deliver(self, delivery: repo.Delivery) -> None:
        body = delivery.payload.encode()
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "user-agent": "rae-events",
            "X-RAE-Delivery": str(delivery.id),
            "X-RAE-Event": delivery.event_type,
            "X-RAE-Timestamp": timestamp,
            "X-RAE-Signature": sign(delivery.secret, timestamp, body),
        }
        error: str | None = None
        # The firing's trace continues here: the POST is a child of the consumer span that fired.
        with self._tracer.start_as_current_span(
            "webhook deliver",
            context=extract_context(delivery.trace_headers),
            attributes={"rae.delivery.id": str(delivery.id), "rae.tenant_id": delivery.tenant_id},
        ):
            try:
                response = await self.http.post(
                    delivery.url, content=body, headers=headers, timeout=self.timeout_s
                )
                if not response.is_success:
                    error = f"HTTP {response.status_code} from the receiver"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempts = delivery.attempts + 1
        if error is None:
            latency_ms = await repo.delivered(self.pool, delivery.id, attempts)
            if latency_ms is not None:
                self.metrics.firing_latency.labels("webhook").observe(latency_ms / 1000)
            return
        self.metrics.webhook_failures.inc()
        if attempts >= delivery.max_attempts:
            if await repo.dead(self.pool, delivery.id, attempts, error):
                self.metrics.dead_lettered.inc()
                _log.warning("webhook %s dead after %d attempts: %s", delivery.id, attempts, error)
            return
        delay = backoff_s(attempts, self.backoff_base_s, self.backoff_max_s, self._rng)
        if await repo.retry_later(self.pool, delivery.id, attempts, error, delay):
            self.metrics.webhook_retries.inc()

    async def _send_dead(self, rows: Sequence[Any]) -> None:
        """The DLQ format of rae_common.messaging: the record as it would have been sent (here the
        command envelope), keyed by tenant, the failure in `rae-dlq-*` headers."""
        records = []
        for row in rows:
            headers: dict[str, str] = {}
            inject_context(headers)
            headers.update(
                {
                    f"{DLQ_HEADER_PREFIX}error": (row["last_error"] or "")[:1000],
                    f"{DLQ_HEADER_PREFIX}source-topic": "webhook",
                    f"{DLQ_HEADER_PREFIX}consumer-group": DELIVERY_GROUP,
                    f"{DLQ_HEADER_PREFIX}attempts": str(row["attempts"]),
                    f"{DLQ_HEADER_PREFIX}webhook-url": row["url"],
                    FIRING_HEADER: str(row["id"]),
                }
            )
            records.append(OutgoingRecord(TOPIC_DLQ, row["payload"].encode(), row["tenant_id"], headers))
        await self.publisher.send_records(records)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                tried = await self.run_once()
                if tried >= self.batch_size:
                    continue
                due_in = await repo.next_due_in(self.pool)
            except Exception:
                _log.warning("webhook delivery pass failed; retrying", exc_info=True)
                due_in = None
            # A floor: a due delivery another replica is claiming right now must not make this loop spin.
            wait = self.poll_interval_s if due_in is None else min(self.poll_interval_s, max(due_in, 0.01))
            await self._pause(wait)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()
