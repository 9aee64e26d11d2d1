"""Composition root of the events service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.db import load_migrations
from rae_common.events import ALL_TOPICS, Envelope
from rae_common.messaging import ConsumedRecord
from rae_common.outbox import shared_migrations
from rae_common.settings import ServiceSettings
from rae_events.adapters.event_log import CONSUMER, SCHEMA, EventLog
from rae_events.api.routes import router


class EventsSettings(ServiceSettings):
    service_name: str = "events"


@contextlib.asynccontextmanager
async def _setup(state: ServiceState) -> AsyncIterator[None]:
    migrations = load_migrations("rae_events") + shared_migrations("inbox")
    async with (
        resources.postgres(state, SCHEMA, migrations) as pool,
        resources.kafka_publisher(state) as dlq,
    ):
        log = EventLog(pool)
        state.resources["event_log"] = log

        async def handle(envelope: Envelope, meta: ConsumedRecord) -> None:
            await log.record(envelope, meta)

        async with resources.kafka_consumer(
            state, group_id=CONSUMER, topics=ALL_TOPICS, handler=handle, dlq=dlq
        ):
            yield


def create_app(settings: EventsSettings | None = None) -> FastAPI:
    return create_service_app(
        settings or EventsSettings(),
        title="RAE events",
        description="The event engine: consumes every topic, fires rules, keeps the audit.",
        routers=[router],
        setup=_setup,
    )
