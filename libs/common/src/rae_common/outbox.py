"""Transactional outbox: write events with the state change, publish them afterwards.

`add_to_outbox` runs inside the caller's transaction, so an event exists exactly when the
change it announces was committed. `OutboxRelay` claims unsent rows in batches with
`FOR UPDATE SKIP LOCKED` (several replicas can relay at once without sending a row twice
concurrently), publishes them, marks them sent, and backs off while the broker is down.

A published row is kept for the retention window (`OUTBOX_RETENTION_HOURS`, counted from when
it was written, so publishing it again does not extend it), then deleted: a broker that loses
what it had acknowledged (the local broker keeps its log in memory; a cluster can be lost) gets
it again from `OutboxRelay.republish`, which queues the rows published in a time range once
more. Consumers handle an event once however often it comes (the inbox), so publishing again is
safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, TracerProvider

from rae_common.background import BackgroundLoop
from rae_common.db import Migration, load_migrations
from rae_common.events import Envelope, topic_for
from rae_common.messaging import KafkaPublisher, OutgoingRecord
from rae_common.telemetry import extract_context, inject_context

__all__ = ["OutboxRelay", "add_to_outbox", "shared_migrations"]

_log = logging.getLogger("rae.outbox")


# Each shared table's migrations: the one creating it, then those changing it since.
_SHARED_TABLES: dict[str, tuple[str, ...]] = {
    "outbox": ("outbox", "outbox_retention"),
    "inbox": ("inbox",),
}


def shared_migrations(*tables: str) -> list[Migration]:
    """The shared tables (`outbox`, `inbox`) as migrations for a service's own schema."""
    unknown = set(tables) - set(_SHARED_TABLES)
    if unknown:
        raise ValueError(f"unknown shared tables: {sorted(unknown)}")
    wanted = {name for table in tables for name in _SHARED_TABLES[table]}
    return [m for m in load_migrations("rae_common") if m.name in wanted]


async def add_to_outbox(
    conn: asyncpg.Connection, schema: str, *envelopes: Envelope, topic: str | None = None
) -> None:
    """Queue `envelopes` in the caller's transaction; the current trace context rides along.

    Many envelopes go in one pipelined round trip (a 256-memory batch: one, not 256)."""
    headers: dict[str, str] = {}
    inject_context(headers)
    await conn.executemany(
        f"INSERT INTO {schema}.outbox (id, topic, key, payload, headers) VALUES ($1, $2, $3, $4, $5)",
        [(e.id, topic or topic_for(e.type), e.tenant_id, e.to_json().decode(), headers) for e in envelopes],
    )


class OutboxRelay(BackgroundLoop):
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        publisher: KafkaPublisher,
        *,
        tracer_provider: TracerProvider | None = None,
        batch_size: int = 100,
        poll_interval_s: float = 0.2,
        max_backoff_s: float = 5.0,
        retention_s: float = 7 * 24 * 3600.0,
        prune_interval_s: float = 600.0,
        stop_timeout_s: float = 3.0,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        self.retention_s = retention_s
        self.prune_interval_s = prune_interval_s
        super().__init__(task_name=f"outbox relay ({schema})", stop_timeout_s=stop_timeout_s)
        self._tracer = trace.get_tracer("rae.outbox", tracer_provider=tracer_provider)
        self._wake = asyncio.Event()
        self.published = 0
        self.consecutive_failures = 0

    def wake(self) -> None:
        """Ask for a publish pass now instead of at the next poll (call after commit)."""
        self._wake.set()

    def request_stop(self) -> None:
        """Start no new batch; the one in hand has `stop_timeout_s` from now to finish: a send to
        a broker that does not answer waits up to the publisher's timeout, twice when it must
        reconnect. A batch cancelled at the deadline stays unsent in the outbox (its transaction
        rolls back) and is published at the next start."""
        super().request_stop()
        self._wake.set()

    async def pending(self) -> int:
        async with self.pool.acquire() as conn:
            count: int = await conn.fetchval(
                f"SELECT count(*) FROM {self.schema}.outbox WHERE sent_at IS NULL"
            )
            return count

    async def republish(self, since: datetime | None = None, until: datetime | None = None) -> int:
        """Queue again the events of the retention window published in [since, until) (an open
        bound: any time before or after); the relay sends them at once, before what is newer.
        Answers how many."""
        async with self.pool.acquire() as conn:
            status: str = await conn.execute(
                f"""UPDATE {self.schema}.outbox SET sent_at = NULL
                    WHERE sent_at >= coalesce($1::timestamptz, '-infinity')
                      AND ($2::timestamptz IS NULL OR sent_at < $2)
                      AND created_at >= now() - make_interval(secs => $3)""",
                since,
                until,
                self.retention_s,
            )
        requeued = int(status.split()[-1])
        if requeued:
            _log.warning(
                "outbox (%s): %d published events queued again (published from %s to %s)",
                self.schema,
                requeued,
                since or "the oldest kept",
                until or "now",
            )
            self.wake()
        return requeued

    async def prune(self, batch: int = 10_000) -> int:
        """Delete the published events written longer ago than the retention window; answers how
        many. In batches (oldest first), so a large backlog never holds one long transaction."""
        deleted = 0
        while True:
            async with self.pool.acquire() as conn:
                status: str = await conn.execute(
                    f"""DELETE FROM {self.schema}.outbox WHERE seq IN (
                            SELECT seq FROM {self.schema}.outbox
                            WHERE created_at < now() - make_interval(secs => $1) AND sent_at IS NOT NULL
                            ORDER BY seq LIMIT $2)""",
                    self.retention_s,
                    batch,
                )
            count = int(status.split()[-1])
            deleted += count
            if count < batch:
                return deleted

    async def run_once(self) -> int:
        """Publish one batch; returns how many rows were sent. Raises when the broker fails."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    f"""SELECT seq, id, topic, key, payload, headers FROM {self.schema}.outbox
                        WHERE sent_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED""",
                    self.batch_size,
                )
                if not rows:
                    return 0
                error: Exception | None = None
                try:
                    await self.publisher.send_records([self._record(row) for row in rows])
                except Exception as exc:
                    error = exc
                seqs = [row["seq"] for row in rows]
                if error is None:
                    await conn.execute(
                        f"UPDATE {self.schema}.outbox SET sent_at = now(), attempts = attempts + 1 "
                        "WHERE seq = ANY($1::bigint[])",
                        seqs,
                    )
                else:
                    await conn.execute(
                        f"UPDATE {self.schema}.outbox SET attempts = attempts + 1, last_error = $2 "
                        "WHERE seq = ANY($1::bigint[])",
                        seqs,
                        str(error)[:1000],
                    )
            if error is not None:
                raise error
        self.published += len(rows)
        return len(rows)

    def _record(self, row: Any) -> OutgoingRecord:
        # A producer span per row, child of the request that wrote it: the trace spans the relay.
        parent = extract_context(row["headers"] or {})
        with self._tracer.start_as_current_span(
            f"{row['topic']} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": row["topic"],
                "messaging.message.id": str(row["id"]),
            },
        ):
            headers: dict[str, str] = {}
            inject_context(headers)
        return OutgoingRecord(row["topic"], row["payload"].encode(), row["key"], headers)

    async def _run(self) -> None:
        backoff = self.poll_interval_s
        next_prune = time.monotonic()
        while not self._stopping.is_set():
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + self.prune_interval_s
                try:
                    await self.prune()
                except Exception as exc:  # a later pass prunes what this one could not
                    _log.warning("outbox (%s) cannot delete old published events: %s", self.schema, exc)
            try:
                sent = await self.run_once()
            except Exception as exc:
                self.consecutive_failures += 1
                _log.warning(
                    "outbox relay (%s) cannot publish: %s; retrying in %.1fs", self.schema, exc, backoff
                )
                await self._pause(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self.consecutive_failures = 0
            backoff = self.poll_interval_s
            if sent < self.batch_size:
                await self._pause(self.poll_interval_s)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()
