"""Kafka records -> the cost service: `llm.usage` events only, everything else is ignored."""

from __future__ import annotations

import logging

from rae_common.events import Envelope, LlmUsage
from rae_common.messaging import ConsumedRecord, Handler
from rae_cost.service import CostService

__all__ = ["usage_handler"]

_log = logging.getLogger("rae.cost.consumer")


def usage_handler(service: CostService) -> Handler:
    async def handle(envelope: Envelope, meta: ConsumedRecord) -> None:  # noqa: ARG001 (Handler signature)
        if envelope.type != "llm.usage":
            return
        if not isinstance(envelope.data, LlmUsage):
            _log.warning("ignoring llm.usage v%d event %s: unknown version", envelope.version, envelope.id)
            return
        await service.record(envelope, envelope.data)

    return handle
