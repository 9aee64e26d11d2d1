"""Kafka records -> the graph: `memory.created` merges a memory's facts in, `memory.deleted`
prunes them; each event once, through the inbox."""

from __future__ import annotations

import asyncpg

from rae_common.events import Envelope, MemoryCreated, MemoryDeleted
from rae_common.inbox import process_once
from rae_common.messaging import ConsumedRecord, Handler
from rae_graph.service import SCHEMA, GraphService

__all__ = ["CONSUMER", "memory_handler"]

CONSUMER = "graph"


def memory_handler(pool: asyncpg.Pool, service: GraphService) -> Handler:
    async def handle(envelope: Envelope, meta: ConsumedRecord) -> None:  # noqa: ARG001 (Handler protocol)
        data = envelope.data
        if isinstance(data, MemoryCreated):
            act = service.on_memory_created
        elif isinstance(data, MemoryDeleted):
            act = service.on_memory_deleted
        else:
            return
        memory_id = data.memory_id

        async def effect(conn: asyncpg.Connection) -> None:
            await act(conn, envelope.tenant_id, memory_id)

        if await process_once(pool, SCHEMA, CONSUMER, envelope, effect):
            service.wake_relay()

    return handle
