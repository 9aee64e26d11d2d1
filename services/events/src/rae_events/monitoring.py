"""Samples what no single request sees: the consumer group's lag and the dead-letter queue size."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from rae_common.background import CANCEL_WAIT_S, BackgroundLoop
from rae_events.adapters import repository as repo
from rae_events.adapters.kafka_lag import ConsumerLag
from rae_events.metrics import EventsMetrics

__all__ = ["MetricsSampler"]

_log = logging.getLogger("rae.events.monitoring")


class MetricsSampler(BackgroundLoop):
    def __init__(
        self,
        pool: asyncpg.Pool,
        lag: ConsumerLag,
        metrics: EventsMetrics,
        interval_s: float,
        stop_timeout_s: float = 3.0,
    ) -> None:
        self.pool = pool
        self.lag = lag
        self.metrics = metrics
        self.interval_s = interval_s
        super().__init__(task_name="events-metrics-sampler", stop_timeout_s=stop_timeout_s)

    async def stop(self) -> None:
        await super().stop()
        # A broker that does not answer must not hold the shutdown at the lag reader's close.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.lag.stop(), timeout=CANCEL_WAIT_S)

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
