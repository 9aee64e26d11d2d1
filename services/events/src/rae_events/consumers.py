"""Kafka records -> the event engine: every event of every topic, a poll's worth at a time."""

from __future__ import annotations

from collections.abc import Sequence

from rae_common.events import Envelope
from rae_common.messaging import BatchHandler, ConsumedEvent, ConsumedRecord, Handler
from rae_events.engine import EventEngine

__all__ = ["engine_batch_handler", "engine_handler"]


def engine_handler(engine: EventEngine) -> Handler:
    async def handle(envelope: Envelope, meta: ConsumedRecord) -> None:
        await engine.handle(envelope, meta)

    return handle


def engine_batch_handler(engine: EventEngine) -> BatchHandler:
    async def handle(events: Sequence[ConsumedEvent]) -> None:
        await engine.handle_batch(events)

    return handle
