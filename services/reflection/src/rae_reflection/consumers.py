"""Kafka records -> the reflection service: `reflection.requested` asks for reflections,
`memory.deleted` takes the reflections citing the memory away; everything else is ignored."""

from __future__ import annotations

import logging

from rae_common.events import Envelope, MemoryDeleted, ReflectionRequested
from rae_common.messaging import ConsumedRecord, Handler
from rae_reflection.service import ReflectionService

__all__ = ["request_handler"]

_log = logging.getLogger("rae.reflection.consumer")


def request_handler(service: ReflectionService) -> Handler:
    async def handle(envelope: Envelope, meta: ConsumedRecord) -> None:  # noqa: ARG001 (Handler signature)
        if envelope.type == "memory.deleted" and isinstance(envelope.data, MemoryDeleted):
            await service.on_memory_deleted(envelope, envelope.data)
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
