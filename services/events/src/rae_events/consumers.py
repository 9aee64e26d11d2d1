"""Kafka records -> the event engine: every event of every topic."""

from __future__ import annotations

from rae_common.events import Envelope
from rae_common.messaging import ConsumedRecord, Handler
from rae_events.engine import EventEngine

__all__ = ["engine_handler"]


def engine_handler(engine: EventEngine) -> Handler:
    async def handle(envelope: Envelope, meta: ConsumedRecord) -> None:
        await engine.handle(envelope, meta)

    return handle
