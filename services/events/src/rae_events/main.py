"""Composition root of the events service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

from fastapi import FastAPI
from pydantic import Field

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.events import ALL_TOPICS, TOPIC_DLQ
from rae_common.outbox_api import router as outbox_router
from rae_common.settings import Infrastructure, ServiceSettings
from rae_events.adapters.dead_letters import DeadLetterRecorder
from rae_events.adapters.event_log import CONSUMER
from rae_events.adapters.kafka_lag import ConsumerLag
from rae_events.api.routes import router
from rae_events.consumers import engine_batch_handler, engine_handler
from rae_events.delivery import DeliveryWorker
from rae_events.domain.rules import default_rule
from rae_events.engine import EventEngine
from rae_events.metrics import EventsMetrics
from rae_events.monitoring import MetricsSampler
from rae_events.schema import schema_plan
from rae_events.service import EventsService


class EventsSettings(ServiceSettings):
    uses: ClassVar[frozenset[Infrastructure]] = frozenset({"postgres", "kafka"})
    # Every topic: it consumes them all, and its rules may emit any event; the dead letters too.
    topics: ClassVar[frozenset[str]] = frozenset({*ALL_TOPICS, TOPIC_DLQ})
    service_name: str = "events"
    events_default_rule_every: int = Field(default=20, ge=1)
    events_default_rule_cooldown_s: int = Field(default=0, ge=0)
    events_webhook_timeout_s: float = Field(default=10.0, gt=0)
    events_webhook_backoff_base_s: float = Field(default=1.0, gt=0)
    events_webhook_backoff_max_s: float = Field(default=300.0, gt=0)
    events_webhook_batch_size: int = Field(default=20, ge=1)
    events_webhook_poll_interval_s: float = Field(default=1.0, gt=0)
    events_metrics_interval_s: float = Field(default=10.0, gt=0)


def create_app(settings: EventsSettings | None = None) -> FastAPI:
    settings = settings or EventsSettings()
    rule = default_rule(settings.events_default_rule_every, settings.events_default_rule_cooldown_s)

    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            pool = await stack.enter_async_context(resources.postgres_with_outbox(state, schema_plan()))
            publisher = state.get("publisher")
            assert state.http is not None
            worker = DeliveryWorker(
                pool,
                state.http,
                publisher,
                metrics,
                timeout_s=settings.events_webhook_timeout_s,
                backoff_base_s=settings.events_webhook_backoff_base_s,
                backoff_max_s=settings.events_webhook_backoff_max_s,
                batch_size=settings.events_webhook_batch_size,
                poll_interval_s=settings.events_webhook_poll_interval_s,
                tracer_provider=state.tracer_provider,
                stop_timeout_s=settings.background_stop_timeout_s,
            )
            recorder = DeadLetterRecorder(
                settings.kafka_options(),
                pool,
                session_timeout_ms=settings.kafka_session_timeout_ms,
                heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
                stop_timeout_s=settings.background_stop_timeout_s,
            )
            sampler = MetricsSampler(
                pool,
                ConsumerLag(settings.kafka_options(), CONSUMER, ALL_TOPICS),
                metrics,
                settings.events_metrics_interval_s,
                stop_timeout_s=settings.background_stop_timeout_s,
            )
            for task in (worker, recorder, sampler):
                task.start()
                state.on_shutdown(task.request_stop)
                stack.push_async_callback(task.stop)
            engine = EventEngine(
                pool,
                metrics,
                wake_relay=state.get("relay").wake,
                wake_delivery=worker.wake,
                default_rule=rule,
            )
            state.resources["engine"] = engine
            state.resources["delivery"] = worker
            state.resources["service"] = EventsService(
                pool, publisher, wake_delivery=worker.wake, default_rule=rule
            )
            await stack.enter_async_context(
                resources.kafka_consumer(
                    state,
                    group_id=CONSUMER,
                    topics=ALL_TOPICS,
                    handler=engine_handler(engine),
                    batch_handler=engine_batch_handler(engine),
                    dlq=publisher,
                )
            )
            yield

    app = create_service_app(
        settings,
        title="RAE events",
        description="The event engine: consumes every topic, fires rules, keeps the audit.",
        routers=[router, outbox_router],
        setup=setup,
    )
    # Registered with the app's registry once, not at each run of its lifespan.
    metrics = EventsMetrics(app.state.rae.metrics.registry)
    return app
