"""Kafka records -> the reflection service: `reflection.requested` asks for reflections,
an erased memory (`memory.deleted` of an erasure) takes the reflections citing it away;
everything else is ignored."""

from __future__ import annotations

import logging

from rae_common.events import Envelope, MemoryDeleted, ReflectionRequested
from rae_common.messaging import ConsumedRecord, Handler
from rae_reflection.service import ERASED, ReflectionService

__all__ = ["request_handler"]

_log = logging.getLogger("rae.reflection.consumer")


def request_handler(service: ReflectionService) -> Handler:
    async def handle(envelope: Envelope, meta: ConsumedRecord) -> None:  # noqa: ARG001 (Handler signature)
        if envelope.type == "memory.deleted":
            # Only an erasure: a reflection outlives the expiry or deletion of one of its sources
            # (working memories expire within a day; consolidating them is what reflection is for).
            if isinstance(envelope.data, MemoryDeleted) and envelope.data.reason == ERASED:
                await service.on_memory_erased(envelope, envelope.data)
            return
        if envelope.type != "reflection.requested":
            return
        if not isinstance(envelope.data, ReflectionRequested):
            _log.warning(
                "ignoring reflection.requested v%d event %s: unknown version", envelope.version, envelope.id
            )
            return
        await service.handle(envelope, envelope.data)

    return handle
