"""Keeps the records every service's consumers parked on the dead-letter topic, per tenant, so
`GET /v1/events/dlq` lists them and a replay can send them back where they came from.

A plain consumer, not `KafkaConsumerLoop`: that loop parks what it cannot handle on this very
topic, and a dead letter that cannot be parsed would go round forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from rae_common.auth import validate_tenant_id
from rae_common.background import BackgroundLoop
from rae_common.db import tenant_tx
from rae_common.events import TOPIC_DLQ
from rae_common.kafka_options import KafkaOptions
from rae_events.adapters import repository as repo

__all__ = ["DLQ_CONSUMER", "DLQ_HEADER_PREFIX", "FIRING_HEADER", "DeadLetterRecorder", "dead_letter_row"]

_log = logging.getLogger("rae.events.dlq")

DLQ_CONSUMER = "events-dlq"
# Headers rae_common.messaging puts on a dead letter; a replay strips them.
DLQ_HEADER_PREFIX = "rae-dlq-"
# Marks the engine's own dead webhooks, which firings already hold.
FIRING_HEADER = "rae-dlq-firing-id"


def dead_letter_row(record: ConsumerRecord[bytes, bytes]) -> repo.DeadLetterRow | None:
    """What to keep of a dead letter; None for one of ours or one without a tenant key."""
    headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}
    if FIRING_HEADER in headers:
        return None
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    try:
        tenant_id = validate_tenant_id(key or "")
    except ValueError:
        _log.warning("dead letter %d@%d has no tenant key; not listed", record.partition, record.offset)
        return None
    payload = record.value or b""
    event_id, event_type = _identify(payload)
    source_topic = headers.get(f"{DLQ_HEADER_PREFIX}source-topic", TOPIC_DLQ)
    group = headers.get(f"{DLQ_HEADER_PREFIX}consumer-group")
    source_partition = _int(headers.get(f"{DLQ_HEADER_PREFIX}source-partition"))
    source_offset = _int(headers.get(f"{DLQ_HEADER_PREFIX}source-offset"))
    # Names the failure, not the dead-letter record: a redelivered dead letter is kept once,
    # and the same event failing again after a replay (a new source offset) is kept again.
    identity = str(event_id) if event_id else hashlib.sha256(payload).hexdigest()
    return repo.DeadLetterRow(
        tenant_id=tenant_id,
        dedupe_key=f"{group}|{source_topic}|{source_partition}|{source_offset}|{identity}",
        error=headers.get(f"{DLQ_HEADER_PREFIX}error", "unknown error"),
        attempts=_int(headers.get(f"{DLQ_HEADER_PREFIX}attempts")) or 0,
        event_id=event_id,
        event_type=event_type,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        consumer_group=group,
        record_key=key,
        payload=payload,
        headers=headers,
    )


def _identify(payload: bytes) -> tuple[uuid.UUID | None, str | None]:
    try:
        value: Any = json.loads(payload)
        event_id = uuid.UUID(str(value["id"]))
        event_type = value.get("type")
        return event_id, event_type if isinstance(event_type, str) else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None, None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class DeadLetterRecorder(BackgroundLoop):
    def __init__(
        self,
        options: KafkaOptions,
        pool: asyncpg.Pool,
        *,
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
        poll_timeout_ms: int = 500,
        reconnect_backoff_s: float = 0.5,
        stop_timeout_s: float = 3.0,
    ) -> None:
        self.options = options
        self.pool = pool
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.poll_timeout_ms = poll_timeout_ms
        self.reconnect_backoff_s = reconnect_backoff_s
        self.recorded = 0
        super().__init__(task_name="dead-letter-recorder", stop_timeout_s=stop_timeout_s)

    async def _run(self) -> None:
        backoff = self.reconnect_backoff_s
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                TOPIC_DLQ,
                **self.options.client_kwargs(),
                group_id=DLQ_CONSUMER,
                client_id=DLQ_CONSUMER,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self.session_timeout_ms,
                heartbeat_interval_ms=self.heartbeat_interval_ms,
                rebalance_timeout_ms=self.session_timeout_ms,
            )
            try:
                await consumer.start()
                backoff = self.reconnect_backoff_s
                while not self._stopping.is_set():
                    batches = await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=100)
                    for tp, records in batches.items():
                        for record in records:
                            await self._keep(record)
                            await consumer.commit({tp: record.offset + 1})
            except Exception:
                _log.warning("dead-letter recorder lost the broker or the database; retrying", exc_info=True)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, 10.0)

    async def _keep(self, record: ConsumerRecord[bytes, bytes]) -> None:
        row = dead_letter_row(record)
        if row is None:
            return
        async with tenant_tx(self.pool, row.tenant_id) as conn:
            if await repo.insert_dead_letter(conn, row):
                self.recorded += 1
