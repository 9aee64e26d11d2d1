"""Samples what no single request sees: the consumer group's lag and the dead-letter queue size."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from rae_events.adapters import repository as repo
from rae_events.adapters.kafka_lag import ConsumerLag
from rae_events.metrics import EventsMetrics

__all__ = ["MetricsSampler"]

_log = logging.getLogger("rae.events.monitoring")


class MetricsSampler:
    def __init__(
        self, pool: asyncpg.Pool, lag: ConsumerLag, metrics: EventsMetrics, interval_s: float
    ) -> None:
        self.pool = pool
        self.lag = lag
        self.metrics = metrics
        self.interval_s = interval_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="events-metrics-sampler")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.lag.stop()

    async def sample(self) -> None:
        try:
            for kind, size in (await repo.dlq_sizes(self.pool)).items():
                self.metrics.dlq_size.labels(kind).set(size)
        except Exception as exc:
            _log.info("cannot sample the DLQ size: %s", exc)
        try:
            for (topic, partition), lag in (await self.lag.read()).items():
                self.metrics.consumer_lag.labels(topic, str(partition)).set(lag)
        except Exception as exc:
            _log.info("cannot sample the consumer lag: %s", exc)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_s)
