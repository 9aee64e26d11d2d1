"""Postgres repository of the cost schema: calls, daily rollups, budgets and their alerts.

Tenant statements run in a `tenant_tx` (row-level security) and also name the tenant in their
WHERE clause, so isolation never depends on one mechanism alone. The overview alone reads across
tenants, in an `overview_tx`, and only rollups and budgets.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from rae_common.db import Where
from rae_cost.domain.budgets import Budget, Crossing, Totals, period_bounds, utc_day
from rae_cost.domain.calls import Call

__all__ = [
    "SCHEMA",
    "LogFilters",
    "StoredBudget",
    "add_alert",
    "add_call",
    "get_budget",
    "lock_tenant",
    "logs",
    "overview",
    "overview_tx",
    "period_totals",
    "put_budget",
    "usage",
]

SCHEMA = "cost"
_LOG_COLUMNS = (
    "id, tenant_id, request_id, operation, model, provider, input_tokens, output_tokens, cost_usd, "
    "estimated, trace_id, occurred_at, recorded_at, calls"
)
_BUDGET_COLUMNS = "daily_tokens, monthly_tokens, daily_usd, monthly_usd, warn_ratio, updated_at"


@dataclass(frozen=True, slots=True)
class StoredBudget:
    budget: Budget
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class LogFilters:
    model: str | None = None
    provider: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@contextlib.asynccontextmanager
async def overview_tx(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A read-only transaction that may read every tenant's rollups and budgets."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute("SELECT set_config('rae.overview', 'all-tenants', true)")
        yield conn


async def lock_tenant(conn: asyncpg.Connection, tenant_id: str) -> None:
    """Serialise the tenant's budget evaluations until commit: two transactions adding usage of
    different models would otherwise each miss the other's part and cross a limit unseen."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('rae-cost:' || $1, 0))", tenant_id)


async def add_call(conn: asyncpg.Connection, call: Call) -> bool:
    """Record a call and add it to its day's rollup; False (and nothing added) when the
    tenant's request id was recorded before."""
    inserted = await conn.fetchval(
        f"""INSERT INTO {SCHEMA}.cost_logs (id, tenant_id, request_id, operation, model, provider,
                input_tokens, output_tokens, cost_usd, estimated, trace_id, occurred_at, calls)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            ON CONFLICT DO NOTHING RETURNING true""",
        call.id,
        call.tenant_id,
        call.request_id,
        call.operation,
        call.model,
        call.provider,
        call.input_tokens,
        call.output_tokens,
        call.cost_usd,
        call.estimated,
        call.trace_id,
        call.occurred_at,
        call.calls,
    )
    if not inserted:
        return False
    await conn.execute(
        f"""INSERT INTO {SCHEMA}.usage_daily AS u (tenant_id, day, model, provider, input_tokens,
                output_tokens, cost_usd, calls)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (tenant_id, day, model, provider) DO UPDATE SET
                input_tokens = u.input_tokens + EXCLUDED.input_tokens,
                output_tokens = u.output_tokens + EXCLUDED.output_tokens,
                cost_usd = u.cost_usd + EXCLUDED.cost_usd,
                calls = u.calls + EXCLUDED.calls""",
        call.tenant_id,
        utc_day(call.occurred_at),
        call.model,
        call.provider,
        call.input_tokens,
        call.output_tokens,
        call.cost_usd,
        call.calls,
    )
    return True


async def period_totals(conn: asyncpg.Connection, tenant_id: str, day: date) -> tuple[Totals, Totals]:
    """The tenant's usage on `day` and in its calendar month."""
    start, end = period_bounds("month", day)
    row = await conn.fetchrow(
        f"""SELECT coalesce(sum(input_tokens + output_tokens) FILTER (WHERE day = $2), 0) AS day_tokens,
                   coalesce(sum(cost_usd) FILTER (WHERE day = $2), 0) AS day_usd,
                   coalesce(sum(input_tokens + output_tokens), 0) AS month_tokens,
                   coalesce(sum(cost_usd), 0) AS month_usd
            FROM {SCHEMA}.usage_daily WHERE tenant_id = $1 AND day >= $3 AND day < $4""",
        tenant_id,
        day,
        start,
        end,
    )
    assert row is not None
    return _totals(row, "day"), _totals(row, "month")


def _totals(row: Any, prefix: str) -> Totals:
    return Totals(tokens=int(row[f"{prefix}_tokens"]), usd=Decimal(row[f"{prefix}_usd"]))


def _budget(row: Any) -> StoredBudget:
    return StoredBudget(
        Budget(
            daily_tokens=row["daily_tokens"],
            monthly_tokens=row["monthly_tokens"],
            daily_usd=row["daily_usd"],
            monthly_usd=row["monthly_usd"],
            warn_ratio=row["warn_ratio"],
        ),
        row["updated_at"],
    )


async def get_budget(conn: asyncpg.Connection, tenant_id: str) -> StoredBudget | None:
    row = await conn.fetchrow(
        f"SELECT {_BUDGET_COLUMNS} FROM {SCHEMA}.budgets WHERE tenant_id = $1", tenant_id
    )
    return None if row is None else _budget(row)


async def put_budget(conn: asyncpg.Connection, tenant_id: str, budget: Budget) -> StoredBudget:
    row = await conn.fetchrow(
        f"""INSERT INTO {SCHEMA}.budgets (tenant_id, daily_tokens, monthly_tokens, daily_usd,
                monthly_usd, warn_ratio)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (tenant_id) DO UPDATE SET daily_tokens = EXCLUDED.daily_tokens,
                monthly_tokens = EXCLUDED.monthly_tokens, daily_usd = EXCLUDED.daily_usd,
                monthly_usd = EXCLUDED.monthly_usd, warn_ratio = EXCLUDED.warn_ratio,
                updated_at = now()
            RETURNING {_BUDGET_COLUMNS}""",
        tenant_id,
        budget.daily_tokens,
        budget.monthly_tokens,
        budget.daily_usd,
        budget.monthly_usd,
        budget.warn_ratio,
    )
    return _budget(row)


async def add_alert(
    conn: asyncpg.Connection, tenant_id: str, crossing: Crossing, event_id: uuid.UUID
) -> bool:
    """Remember that a level was announced for its period; False if it already was."""
    inserted: bool | None = await conn.fetchval(
        f"""INSERT INTO {SCHEMA}.budget_alerts (tenant_id, period, period_start, metric, level,
                limit_value, used, event_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING true""",
        tenant_id,
        crossing.period,
        crossing.period_start,
        crossing.metric,
        crossing.level,
        crossing.limit,
        crossing.used,
        event_id,
    )
    return bool(inserted)


async def usage(conn: asyncpg.Connection, tenant_id: str, since: date, until: date) -> list[dict[str, Any]]:
    """Rollup rows of the days since..until (inclusive), newest day first."""
    rows = await conn.fetch(
        f"""SELECT day, model, provider, input_tokens, output_tokens, cost_usd, calls
            FROM {SCHEMA}.usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3
            ORDER BY day DESC, model, provider""",
        tenant_id,
        since,
        until,
    )
    return [dict(row) for row in rows]


async def logs(
    conn: asyncpg.Connection,
    tenant_id: str,
    filters: LogFilters,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The tenant's calls, newest first, after the keyset `after` (occurred_at, id)."""
    where = Where([tenant_id])
    where.add("tenant_id = $1")
    where.equals("model", filters.model)
    where.equals("provider", filters.provider)
    if filters.request_id is not None:
        # ml records `<X-Request-ID>.<call>`: the HTTP request's id finds all of its calls.
        value = where.bind(filters.request_id)
        where.add(f"(request_id = {value} OR left(request_id, length({value}) + 1) = {value} || '.')")
    where.window("occurred_at", filters.since, filters.until)
    where.before(("occurred_at", "id"), after)
    rows = await conn.fetch(
        f"""SELECT {_LOG_COLUMNS} FROM {SCHEMA}.cost_logs WHERE {where.sql()}
            ORDER BY occurred_at DESC, id DESC LIMIT {where.bind(limit)}""",
        *where.params,
    )
    return [dict(row) for row in rows]


async def overview(
    conn: asyncpg.Connection, day: date, after: str | None, limit: int
) -> list[tuple[str, StoredBudget | None, Totals, Totals]]:
    """Tenants with a budget or usage in the month of `day`, by id after `after`: each with its
    budget and its usage on `day` and in the month."""
    start, end = period_bounds("month", day)
    rows = await conn.fetch(
        f"""WITH tenants AS (
                SELECT tenant_id FROM {SCHEMA}.budgets WHERE $4::text IS NULL OR tenant_id > $4
                UNION
                SELECT tenant_id FROM {SCHEMA}.usage_daily
                WHERE day >= $2 AND day < $3 AND ($4::text IS NULL OR tenant_id > $4)
                ORDER BY tenant_id LIMIT $5)
            SELECT t.tenant_id, b.tenant_id IS NOT NULL AS has_budget,
                   b.daily_tokens, b.monthly_tokens, b.daily_usd, b.monthly_usd, b.warn_ratio,
                   b.updated_at,
                   coalesce(sum(u.input_tokens + u.output_tokens) FILTER (WHERE u.day = $1), 0)
                       AS day_tokens,
                   coalesce(sum(u.cost_usd) FILTER (WHERE u.day = $1), 0) AS day_usd,
                   coalesce(sum(u.input_tokens + u.output_tokens), 0) AS month_tokens,
                   coalesce(sum(u.cost_usd), 0) AS month_usd
            FROM tenants t
            LEFT JOIN {SCHEMA}.budgets b ON b.tenant_id = t.tenant_id
            LEFT JOIN {SCHEMA}.usage_daily u ON u.tenant_id = t.tenant_id AND u.day >= $2 AND u.day < $3
            GROUP BY t.tenant_id, b.tenant_id
            ORDER BY t.tenant_id""",
        day,
        start,
        end,
        after,
        limit,
    )
    return [
        (
            row["tenant_id"],
            _budget(row) if row["has_budget"] else None,
            _totals(row, "day"),
            _totals(row, "month"),
        )
        for row in rows
    ]
