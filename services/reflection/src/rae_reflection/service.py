"""Reflection use cases: answer a request with reflections over groups of recent memories."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from rae_common.contracts.memory import Layer
from rae_common.contracts.reflection import ReflectionOut, TriggerRequest
from rae_common.db import tenant_tx
from rae_common.errors import ProblemError
from rae_common.events import Envelope, MemoryDeleted, ReflectionCreated, ReflectionRequested, new_envelope
from rae_common.inbox import process_once
from rae_common.outbox import add_to_outbox
from rae_common.paging import decode_cursor, encode_cursor, invalid_cursor
from rae_reflection.adapters import repository as repo
from rae_reflection.adapters.clients import MemoryClient, MlClient
from rae_reflection.adapters.repository import SCHEMA, NewReflection
from rae_reflection.domain.clustering import GroupLimits, cluster, group_key
from rae_reflection.domain.prompt import PROMPT_VERSION, reflection_messages

__all__ = ["CONSUMER", "ERASED", "MANUAL_RULE_ID", "ReflectionService", "Tuning"]

CONSUMER = "reflection"
# The `reason` of a `memory.deleted` that an erasure of a subject emitted.
ERASED = "erased"
# `reflection.requested` names the rule that fired; a manual trigger is no rule.
MANUAL_RULE_ID = uuid.UUID(int=0)
_SOURCE_LAYERS = [layer.value for layer in Layer if layer is not Layer.REFLECTIVE]

_log = logging.getLogger("rae.reflection")


@dataclass(frozen=True, slots=True)
class Tuning:
    limits: GroupLimits = GroupLimits()
    max_memories: int = 500
    model: str | None = None
    max_tokens: int = 256
    importance: float = 0.7


class ReflectionService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        memory: MemoryClient,
        ml: MlClient,
        wake_relay: Callable[[], None],
        tuning: Tuning,
    ) -> None:
        self.pool = pool
        self.memory = memory
        self.ml = ml
        self.wake_relay = wake_relay
        self.tuning = tuning

    # --- requests --------------------------------------------------------------------------

    async def handle(self, envelope: Envelope, request: ReflectionRequested) -> list[dict[str, Any]]:
        """Reflect on the tenant's memories since its last reflection; the reflections recorded
        (none when this event was handled before).

        Model and memory calls happen before the transaction that records the event as handled,
        so a redelivery after a crash redoes them: the memory API replays what each group's
        Idempotency-Key stored, and a group already recorded is not recorded (or announced) again.
        """
        tenant_id = envelope.tenant_id
        async with self.pool.acquire() as conn:
            if await repo.processed(conn, CONSUMER, envelope.id):
                return []
        async with tenant_tx(self.pool, tenant_id) as conn:
            mark = await repo.watermark(conn, tenant_id)
        since = max((t for t in (request.since, mark) if t is not None), default=None)
        # The window ends when the request was made, so a redelivery reads the same memories.
        until = envelope.occurred_at
        items = await self._reflect(envelope.id, tenant_id, since, until)
        recorded: list[dict[str, Any]] = []

        async def effect(conn: asyncpg.Connection) -> None:
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant_id)
            for item in items:
                row = await repo.insert(conn, tenant_id, envelope.id, item)
                if row is not None:
                    recorded.append(row)
            await add_to_outbox(conn, SCHEMA, *(_created(tenant_id, envelope.id, row) for row in recorded))
            await repo.set_watermark(conn, tenant_id, until)

        if not await process_once(self.pool, SCHEMA, CONSUMER, envelope, effect):
            return []
        if recorded:
            self.wake_relay()
        _log.info("request %s of tenant %s: %d reflection(s)", envelope.id, tenant_id, len(recorded))
        return [_out(row) for row in recorded]

    async def _reflect(
        self, request_id: uuid.UUID, tenant_id: str, since: datetime | None, until: datetime
    ) -> list[NewReflection]:
        tuning = self.tuning
        memories = await self.memory.recent(
            tenant_id, since=since, until=until, limit=tuning.max_memories, layers=_SOURCE_LAYERS
        )
        memories.reverse()  # oldest first: groups grow in the order things happened
        if len(memories) < tuning.limits.min_size:
            return []
        vectors = await self.ml.embed(tenant_id, [m["content"] for m in memories])
        groups = await asyncio.to_thread(cluster, vectors, tuning.limits)
        items: list[NewReflection] = []
        for index, members in enumerate(groups):
            sources = [memories[i] for i in members]
            source_ids = [uuid.UUID(m["id"]) for m in sources]
            generated = await self.ml.generate(
                tenant_id,
                reflection_messages([m["content"] for m in sources]),
                model=tuning.model,
                max_tokens=tuning.max_tokens,
            )
            content = generated.content.strip()
            if not content:
                continue
            key = group_key(source_ids)
            provenance = {
                "source_ids": [str(i) for i in source_ids],
                "model": generated.model,
                "prompt_version": PROMPT_VERSION,
                "request_event_id": str(request_id),
                "group_key": key,
            }
            stored = await self.memory.store(
                tenant_id,
                {
                    "content": content,
                    "layer": Layer.REFLECTIVE.value,
                    "tags": ["reflection"],
                    "metadata": {"reflection": provenance},
                    "source": "reflection",
                    "importance": tuning.importance,
                },
                idempotency_key=f"reflection:{request_id}:{index}",
            )
            if stored is None:
                _log.warning(
                    "request %s group %d: an earlier attempt stored other text; skipped", request_id, index
                )
                continue
            items.append(
                NewReflection(
                    id=uuid.UUID(stored["id"]),
                    content=stored["content"],
                    source_ids=source_ids,
                    model=generated.model,
                    prompt_version=PROMPT_VERSION,
                    group_key=key,
                )
            )
        return items

    async def trigger(self, tenant_id: str, body: TriggerRequest) -> uuid.UUID:
        """Emit a `reflection.requested` for the tenant (outbox); the consumer answers it."""
        key = f"manual:{uuid.uuid4()}"
        envelope = new_envelope(
            "reflection.requested",
            ReflectionRequested(
                rule_id=MANUAL_RULE_ID, reason=body.reason, since=body.since, memory_count=0, trigger_key=key
            ),
            tenant_id=tenant_id,
            producer="reflection",
            idempotency_key=key,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await add_to_outbox(conn, SCHEMA, envelope)
        self.wake_relay()
        return envelope.id

    # --- forgetting ------------------------------------------------------------------------

    async def forget(self, tenant_id: str, memory_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Delete the reflections citing (or being) these memories; their ids. The caller (an
        erasure in the memory service) deletes their reflective memories with the rest."""
        async with tenant_tx(self.pool, tenant_id) as conn:
            return await repo.forget(conn, tenant_id, memory_ids)

    async def on_memory_erased(self, envelope: Envelope, deleted: MemoryDeleted) -> None:
        """An erased memory takes the reflections citing it along, here and as reflective memories.

        Once per event (inbox). The reflective memories are deleted before the rows' deletion
        commits, so a failure leaves the rows to find again on redelivery; a memory already gone
        is no error. An erasure has usually done all of it already: then this finds nothing."""
        tenant_id = envelope.tenant_id
        removed: list[uuid.UUID] = []

        async def effect(conn: asyncpg.Connection) -> None:
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant_id)
            removed.extend(await repo.forget(conn, tenant_id, [deleted.memory_id]))
            for reflection_id in removed:
                if reflection_id != deleted.memory_id:
                    await self.memory.delete(tenant_id, reflection_id)

        await process_once(self.pool, SCHEMA, CONSUMER, envelope, effect)
        if removed:
            _log.info(
                "memory %s of tenant %s is gone: %d reflection(s) removed",
                deleted.memory_id,
                tenant_id,
                len(removed),
            )

    # --- reading ---------------------------------------------------------------------------

    async def page(
        self, tenant_id: str, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        after = _decode_cursor(cursor) if cursor else None
        async with tenant_tx(self.pool, tenant_id) as conn:
            rows = await repo.page(conn, tenant_id, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_at"].isoformat(), str(rows[-1]["id"])) if more else None
        return [_out(r) for r in rows], next_cursor

    async def get(self, tenant_id: str, reflection_id: uuid.UUID) -> dict[str, Any]:
        """A reflection with its source memories, read from the memory service."""
        async with tenant_tx(self.pool, tenant_id) as conn:
            row = await repo.get(conn, tenant_id, reflection_id)
        if row is None:
            raise ProblemError(404, f"Reflection {reflection_id} was not found.", slug="reflection-not-found")
        sources = await self.memory.get_many(tenant_id, row["source_ids"])
        return {**_out(row), "sources": sources}


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return ReflectionOut.model_validate(row).model_dump(mode="json")


def _created(tenant_id: str, request_id: uuid.UUID, row: dict[str, Any]) -> Envelope:
    return new_envelope(
        "reflection.created",
        ReflectionCreated(
            reflection_id=row["id"],
            source_ids=row["source_ids"],
            model=row["model"],
            prompt_version=row["prompt_version"],
            request_event_id=request_id,
        ),
        tenant_id=tenant_id,
        producer="reflection",
        idempotency_key=f"reflection.created:{row['id']}",
    )


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    created_at, reflection_id = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(created_at), uuid.UUID(reflection_id)
    except ValueError as exc:
        raise invalid_cursor() from exc
