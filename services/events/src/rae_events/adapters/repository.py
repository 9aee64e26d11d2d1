"""Postgres repository of the events schema: tenants, rules and their state, firings (the audit
and the webhook queue) and the dead letters of other consumers.

Tenant statements run in a transaction that declared its tenant (row-level security) and also
name the tenant in their WHERE clause. The delivery worker alone works across tenants, in a
`worker_tx`, and only on firings (and reads the DLQ sizes).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from rae_common.contracts.events import CommandType, FiringStatus, RuleType
from rae_common.db import Where
from rae_common.events import Envelope
from rae_events.adapters.event_log import SCHEMA
from rae_events.domain.rules import Rule, RuleSpec, RuleState, parse_spec

__all__ = [
    "WORKER",
    "DeadLetterRow",
    "Delivery",
    "FiringFilters",
    "NewFiring",
    "claim_due",
    "count_match",
    "dead",
    "declare_tenant",
    "delete_rule",
    "delivered",
    "dlq_page",
    "dlq_sizes",
    "enabled_rules",
    "ensure_tenant",
    "firing_status",
    "firings",
    "get_rule",
    "insert_dead_letter",
    "insert_firing",
    "insert_rule",
    "lock_dead_letter",
    "mark_fired",
    "mark_replayed",
    "next_due_in",
    "publish_dead",
    "replace_rule",
    "requeue",
    "retry_later",
    "rules",
    "to_rule",
    "worker_tx",
]

WORKER = "events-delivery"
_RULE_COLUMNS = (
    "id, tenant_id, name, type, params, action, cooldown_s, max_attempts, enabled, created_at, updated_at"
)
_FIRING_COLUMNS = (
    "id, rule_id, rule_name, rule_type, trigger_key, source_event_id, source_type, action_kind, "
    "event_type, status, attempts, max_attempts, last_error, latency_ms, next_attempt_at, created_at, "
    "finished_at"
)


async def declare_tenant(conn: asyncpg.Connection, tenant_id: str) -> None:
    """Scope the current transaction to `tenant_id` (row-level security)."""
    await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant_id)


@contextlib.asynccontextmanager
async def worker_tx(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that may work on every tenant's firings."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('rae.worker', $1, true)", WORKER)
        yield conn


# --- tenants and rules ----------------------------------------------------------------------


async def ensure_tenant(conn: asyncpg.Connection, tenant_id: str, default: RuleSpec | None) -> bool:
    """Set a tenant up on its first use: one without rules then gets `default`. True when this
    call created the default rule."""
    first_use = await conn.fetchval(
        f"INSERT INTO {SCHEMA}.tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
        tenant_id,
    )
    if not first_use or default is None:
        return False
    if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.rules WHERE tenant_id = $1)", tenant_id):
        return False
    await insert_rule(conn, tenant_id, uuid.uuid4(), default)
    return True


def _spec_values(spec: RuleSpec) -> tuple[Any, ...]:
    return (
        spec.name,
        spec.type,
        spec.params.model_dump(mode="json"),
        spec.action.model_dump(mode="json"),
        spec.cooldown_s,
        spec.max_attempts,
        spec.enabled,
    )


def to_rule(row: Any) -> Rule:
    spec = parse_spec(
        {
            "type": row["type"],
            "name": row["name"],
            "params": row["params"],
            "action": row["action"],
            "cooldown_s": row["cooldown_s"],
            "max_attempts": row["max_attempts"],
            "enabled": row["enabled"],
        }
    )
    return Rule(id=row["id"], tenant_id=row["tenant_id"], spec=spec)


async def insert_rule(conn: asyncpg.Connection, tenant_id: str, rule_id: uuid.UUID, spec: RuleSpec) -> Any:
    """Raises `asyncpg.UniqueViolationError` when the tenant has a rule of that name."""
    return await conn.fetchrow(
        f"""INSERT INTO {SCHEMA}.rules (id, tenant_id, name, type, params, action, cooldown_s,
                max_attempts, enabled)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_RULE_COLUMNS}""",
        rule_id,
        tenant_id,
        *_spec_values(spec),
    )


async def replace_rule(conn: asyncpg.Connection, tenant_id: str, rule_id: uuid.UUID, spec: RuleSpec) -> Any:
    """None when there is no such rule; a rule's counters and cooldown survive a replace."""
    return await conn.fetchrow(
        f"""UPDATE {SCHEMA}.rules SET name = $3, type = $4, params = $5, action = $6, cooldown_s = $7,
                max_attempts = $8, enabled = $9, updated_at = now()
            WHERE tenant_id = $1 AND id = $2 RETURNING {_RULE_COLUMNS}""",
        tenant_id,
        rule_id,
        *_spec_values(spec),
    )


async def get_rule(conn: asyncpg.Connection, tenant_id: str, rule_id: uuid.UUID) -> Any:
    return await conn.fetchrow(
        f"SELECT {_RULE_COLUMNS} FROM {SCHEMA}.rules WHERE tenant_id = $1 AND id = $2", tenant_id, rule_id
    )


async def delete_rule(conn: asyncpg.Connection, tenant_id: str, rule_id: uuid.UUID) -> bool:
    deleted = await conn.fetchval(
        f"DELETE FROM {SCHEMA}.rules WHERE tenant_id = $1 AND id = $2 RETURNING true", tenant_id, rule_id
    )
    return bool(deleted)


async def rules(
    conn: asyncpg.Connection,
    tenant_id: str,
    rule_type: RuleType | None,
    enabled: bool | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Any]:
    """The tenant's rules, oldest first, after the keyset `after` (created_at, id)."""
    return list(
        await conn.fetch(
            f"""SELECT {_RULE_COLUMNS} FROM {SCHEMA}.rules
                WHERE tenant_id = $1 AND ($2::text IS NULL OR type = $2)
                  AND ($3::boolean IS NULL OR enabled = $3)
                  AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5::uuid))
                ORDER BY created_at, id LIMIT $6""",
            tenant_id,
            rule_type,
            enabled,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
    )


async def enabled_rules(conn: asyncpg.Connection, tenant_id: str, rule_type: RuleType) -> list[Rule]:
    rows = await conn.fetch(
        f"""SELECT {_RULE_COLUMNS} FROM {SCHEMA}.rules
            WHERE tenant_id = $1 AND type = $2 AND enabled ORDER BY created_at, id""",
        tenant_id,
        rule_type,
    )
    return [to_rule(row) for row in rows]


async def count_match(conn: asyncpg.Connection, rule: Rule, matches: int = 1) -> RuleState:
    """Count `matches` more matching events for the rule and lock its state until commit."""
    row = await conn.fetchrow(
        f"""INSERT INTO {SCHEMA}.rule_state AS s (rule_id, tenant_id, matched) VALUES ($1, $2, $3)
            ON CONFLICT (rule_id) DO UPDATE SET matched = s.matched + $3
            RETURNING matched, last_fired_at, matched_at_fire""",
        rule.id,
        rule.tenant_id,
        matches,
    )
    return RuleState(row["matched"], row["last_fired_at"], row["matched_at_fire"])


async def mark_fired(conn: asyncpg.Connection, rule: Rule, occurred_at: datetime, matched: int) -> None:
    await conn.execute(
        f"""UPDATE {SCHEMA}.rule_state SET last_fired_at = $3, matched_at_fire = $4
            WHERE tenant_id = $1 AND rule_id = $2""",
        rule.tenant_id,
        rule.id,
        occurred_at,
        matched,
    )


# --- firings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewFiring:
    id: uuid.UUID
    rule: Rule
    trigger_key: str
    source: Envelope
    status: FiringStatus
    command: Envelope
    trace_headers: dict[str, str] = field(default_factory=dict)


async def insert_firing(conn: asyncpg.Connection, firing: NewFiring) -> bool:
    """Record a firing; False (and nothing recorded) when its trigger key fired before.

    An event action is done once its command is in the outbox (same transaction): delivered, its
    latency measured now. A webhook waits for the delivery worker, due at once."""
    rule, spec = firing.rule, firing.rule.spec
    webhook = firing.status == "pending"
    action = spec.action.model_dump(mode="json")
    inserted = await conn.fetchval(
        f"""INSERT INTO {SCHEMA}.firings (id, tenant_id, rule_id, rule_name, rule_type, trigger_key,
                source_event_id, source_type, source_occurred_at, action_kind, event_type, status,
                attempts, max_attempts, latency_ms, next_attempt_at, url, secret, payload, trace_headers,
                finished_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::timestamptz, $10, $11, $12::text,
                CASE WHEN $12::text = 'delivered' THEN 1 ELSE 0 END, $13,
                CASE WHEN $12::text = 'delivered'
                     THEN extract(epoch FROM clock_timestamp() - $9::timestamptz) * 1000 END,
                CASE WHEN $14::boolean THEN now() END, $15, $16, $17, $18,
                CASE WHEN NOT $14::boolean THEN clock_timestamp() END)
            ON CONFLICT (tenant_id, trigger_key) DO NOTHING RETURNING true""",
        firing.id,
        rule.tenant_id,
        rule.id,
        spec.name,
        spec.type,
        firing.trigger_key,
        firing.source.id,
        firing.source.type,
        firing.source.occurred_at,
        rule.action_kind,
        rule.event_type,
        firing.status,
        spec.max_attempts,
        webhook,
        action.get("url") if webhook else None,
        action.get("secret") if webhook else None,
        firing.command.to_json().decode() if webhook else None,
        firing.trace_headers,
    )
    return bool(inserted)


@dataclass(frozen=True, slots=True)
class FiringFilters:
    rule_id: uuid.UUID | None = None
    status: FiringStatus | None = None
    since: datetime | None = None
    until: datetime | None = None


async def firings(
    conn: asyncpg.Connection,
    tenant_id: str,
    filters: FiringFilters,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The tenant's firings, newest first, after the keyset `after` (created_at, id)."""
    where = Where([tenant_id])
    where.add("tenant_id = $1")
    where.equals("rule_id", filters.rule_id)
    where.equals("status", filters.status)
    where.window("created_at", filters.since, filters.until)
    where.before(("created_at", "id"), after)
    rows = await conn.fetch(
        f"""SELECT {_FIRING_COLUMNS} FROM {SCHEMA}.firings WHERE {where.sql()}
            ORDER BY created_at DESC, id DESC LIMIT {where.bind(limit)}""",
        *where.params,
    )
    return [dict(row) for row in rows]


# --- the delivery worker's queue ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    tenant_id: str
    url: str
    secret: str
    payload: str
    event_type: CommandType
    attempts: int
    max_attempts: int
    trace_headers: dict[str, str]


async def claim_due(pool: asyncpg.Pool, limit: int, lease_s: float) -> list[Delivery]:
    """Take up to `limit` due webhooks for `lease_s` seconds: another worker (or this one after a
    crash) may try them again once the lease is over."""
    async with worker_tx(pool) as conn:
        rows = await conn.fetch(
            f"""WITH due AS (
                    SELECT id FROM {SCHEMA}.firings
                    WHERE status IN ('pending', 'failed') AND action_kind = 'webhook'
                      AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                UPDATE {SCHEMA}.firings f SET next_attempt_at = now() + make_interval(secs => $2)
                FROM due WHERE f.id = due.id
                RETURNING f.id, f.tenant_id, f.url, f.secret, f.payload, f.event_type, f.attempts,
                          f.max_attempts, f.trace_headers""",
            limit,
            lease_s,
        )
    return [
        Delivery(
            id=row["id"],
            tenant_id=row["tenant_id"],
            url=row["url"],
            secret=row["secret"],
            payload=row["payload"],
            event_type=row["event_type"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            trace_headers=row["trace_headers"] or {},
        )
        for row in rows
    ]


async def next_due_in(pool: asyncpg.Pool) -> float | None:
    """Seconds until the next webhook is due (<= 0: now), None when none waits."""
    async with worker_tx(pool) as conn:
        seconds: float | None = await conn.fetchval(
            f"""SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 FROM {SCHEMA}.firings
                WHERE status IN ('pending', 'failed') AND action_kind = 'webhook'"""
        )
    return seconds


# Each outcome applies only to the try it answers: a try whose lease ran out and was taken
# over by another worker finds `attempts` moved on and changes nothing.
_TRIED = "id = $1 AND attempts = $2 - 1 AND status IN ('pending', 'failed')"


async def delivered(pool: asyncpg.Pool, delivery_id: uuid.UUID, attempts: int) -> float | None:
    """The firing's latency in ms; None when the try was not the current one."""
    async with worker_tx(pool) as conn:
        latency_ms: float | None = await conn.fetchval(
            f"""UPDATE {SCHEMA}.firings SET status = 'delivered', attempts = $2, next_attempt_at = NULL,
                    finished_at = clock_timestamp(),
                    latency_ms = extract(epoch FROM clock_timestamp() - source_occurred_at) * 1000
                WHERE {_TRIED} RETURNING latency_ms""",
            delivery_id,
            attempts,
        )
    return latency_ms


async def retry_later(
    pool: asyncpg.Pool, delivery_id: uuid.UUID, attempts: int, error: str, delay_s: float
) -> bool:
    async with worker_tx(pool) as conn:
        done = await conn.fetchval(
            f"""UPDATE {SCHEMA}.firings SET status = 'failed', attempts = $2, last_error = $3,
                    next_attempt_at = now() + make_interval(secs => $4)
                WHERE {_TRIED} RETURNING true""",
            delivery_id,
            attempts,
            error[:1000],
            delay_s,
        )
    return bool(done)


async def dead(pool: asyncpg.Pool, delivery_id: uuid.UUID, attempts: int, error: str) -> bool:
    async with worker_tx(pool) as conn:
        done = await conn.fetchval(
            f"""UPDATE {SCHEMA}.firings SET status = 'dead', attempts = $2, last_error = $3,
                    next_attempt_at = NULL, finished_at = clock_timestamp(), dlq_published_at = NULL
                WHERE {_TRIED} RETURNING true""",
            delivery_id,
            attempts,
            error[:1000],
        )
    return bool(done)


async def publish_dead(
    pool: asyncpg.Pool, send: Callable[[Sequence[Any]], Awaitable[None]], limit: int
) -> int:
    """Hand dead webhooks not yet on the DLQ topic to `send`; marked published only when it
    returns (a failure leaves them for the next pass)."""
    async with worker_tx(pool) as conn:
        rows = await conn.fetch(
            f"""SELECT id, tenant_id, rule_id, url, payload, event_type, attempts, last_error
                FROM {SCHEMA}.firings WHERE status = 'dead' AND dlq_published_at IS NULL
                ORDER BY finished_at LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
        )
        if not rows:
            return 0
        await send(rows)
        await conn.execute(
            f"UPDATE {SCHEMA}.firings SET dlq_published_at = now() WHERE id = ANY($1::uuid[])",
            [row["id"] for row in rows],
        )
    return len(rows)


async def requeue(conn: asyncpg.Connection, tenant_id: str, firing_id: uuid.UUID) -> datetime | None:
    """Put a dead webhook back in the queue with its attempts reset; None when it is not dead."""
    replayed: datetime | None = await conn.fetchval(
        f"""UPDATE {SCHEMA}.firings SET status = 'pending', attempts = 0, next_attempt_at = now(),
                finished_at = NULL, latency_ms = NULL, dlq_published_at = NULL
            WHERE tenant_id = $1 AND id = $2 AND status = 'dead' RETURNING now()""",
        tenant_id,
        firing_id,
    )
    return replayed


async def firing_status(conn: asyncpg.Connection, tenant_id: str, firing_id: uuid.UUID) -> str | None:
    status: str | None = await conn.fetchval(
        f"SELECT status FROM {SCHEMA}.firings WHERE tenant_id = $1 AND id = $2", tenant_id, firing_id
    )
    return status


# --- dead letters ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    tenant_id: str
    dedupe_key: str
    error: str
    attempts: int
    event_id: uuid.UUID | None
    event_type: str | None
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    consumer_group: str | None
    record_key: str | None
    payload: bytes
    headers: dict[str, str]


async def insert_dead_letter(conn: asyncpg.Connection, row: DeadLetterRow) -> bool:
    inserted = await conn.fetchval(
        f"""INSERT INTO {SCHEMA}.dead_letters (id, tenant_id, dedupe_key, error, attempts, event_id,
                event_type, source_topic, source_partition, source_offset, consumer_group, record_key,
                payload, headers)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            ON CONFLICT (dedupe_key) DO NOTHING RETURNING true""",
        uuid.uuid4(),
        row.tenant_id,
        row.dedupe_key,
        row.error[:1000],
        row.attempts,
        row.event_id,
        row.event_type,
        row.source_topic,
        row.source_partition,
        row.source_offset,
        row.consumer_group,
        row.record_key,
        row.payload,
        row.headers,
    )
    return bool(inserted)


async def lock_dead_letter(conn: asyncpg.Connection, tenant_id: str, dead_letter_id: uuid.UUID) -> Any:
    return await conn.fetchrow(
        f"""SELECT id, source_topic, record_key, payload, headers, replayed_at
            FROM {SCHEMA}.dead_letters WHERE tenant_id = $1 AND id = $2 FOR UPDATE""",
        tenant_id,
        dead_letter_id,
    )


async def mark_replayed(conn: asyncpg.Connection, tenant_id: str, dead_letter_id: uuid.UUID) -> datetime:
    replayed: datetime = await conn.fetchval(
        f"""UPDATE {SCHEMA}.dead_letters SET replayed_at = now()
            WHERE tenant_id = $1 AND id = $2 RETURNING replayed_at""",
        tenant_id,
        dead_letter_id,
    )
    return replayed


async def dlq_page(
    conn: asyncpg.Connection,
    tenant_id: str,
    kind: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The tenant's dead webhooks and dead letters not replayed, newest first, after the keyset
    `after` (dead_at, id)."""
    rows = await conn.fetch(
        f"""SELECT * FROM (
                SELECT id, 'webhook' AS kind, coalesce(last_error, '') AS error, attempts,
                       finished_at AS dead_at, id AS event_id, event_type, rule_id, url,
                       NULL::text AS source_topic, NULL::integer AS source_partition,
                       NULL::bigint AS source_offset, NULL::text AS consumer_group
                FROM {SCHEMA}.firings
                WHERE tenant_id = $1 AND status = 'dead' AND ($2::text IS NULL OR $2 = 'webhook')
                  AND ($3::timestamptz IS NULL OR (finished_at, id) < ($3, $4::uuid))
                UNION ALL
                SELECT id, 'consumer', error, attempts, dead_at, event_id, event_type, NULL::uuid,
                       NULL::text, source_topic, source_partition, source_offset, consumer_group
                FROM {SCHEMA}.dead_letters
                WHERE tenant_id = $1 AND replayed_at IS NULL AND ($2::text IS NULL OR $2 = 'consumer')
                  AND ($3::timestamptz IS NULL OR (dead_at, id) < ($3, $4::uuid))
            ) AS dlq ORDER BY dead_at DESC, id DESC LIMIT $5""",
        tenant_id,
        kind,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [dict(row) for row in rows]


async def dlq_sizes(pool: asyncpg.Pool) -> dict[str, int]:
    """Dead webhooks and unreplayed dead letters of every tenant."""
    async with worker_tx(pool) as conn:
        row = await conn.fetchrow(
            f"""SELECT (SELECT count(*) FROM {SCHEMA}.firings WHERE status = 'dead') AS webhook,
                       (SELECT count(*) FROM {SCHEMA}.dead_letters WHERE replayed_at IS NULL) AS consumer"""
        )
    return {"webhook": int(row["webhook"]), "consumer": int(row["consumer"])}
