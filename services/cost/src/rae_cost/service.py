"""Cost use cases: account each model call once, keep budgets, answer governance questions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import asyncpg

from rae_common.contracts.cost import BudgetIn, CostLogQuery
from rae_common.db import tenant_tx
from rae_common.errors import ProblemError
from rae_common.events import BudgetExceeded, BudgetWarning, Envelope, LlmUsage, new_envelope
from rae_common.inbox import process_once
from rae_common.outbox import add_to_outbox
from rae_common.paging import decode_cursor, encode_cursor, invalid_cursor
from rae_cost.adapters import repository as repo
from rae_cost.adapters.repository import SCHEMA, LogFilters, StoredBudget
from rae_cost.domain.budgets import (
    Budget,
    Crossing,
    PeriodStatus,
    Totals,
    as_utc,
    crossings,
    usage_window,
    utc_day,
)
from rae_cost.domain.calls import Call, to_usd
from rae_cost.metrics import CostMetrics

__all__ = ["CONSUMER", "Clock", "CostService"]

CONSUMER = "cost"
Clock = Callable[[], datetime]


class CostService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: CostMetrics,
        wake_relay: Callable[[], None],
        *,
        clock: Clock,
        default_warn_ratio: Decimal,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.wake_relay = wake_relay
        self.clock = clock
        self.default_warn_ratio = default_warn_ratio

    def today(self) -> date:
        return utc_day(self.clock())

    # --- usage -----------------------------------------------------------------------------

    async def record(self, envelope: Envelope, usage: LlmUsage) -> bool:
        """Account one `llm.usage` event and announce the budget levels it reaches; False when
        the event, or another carrying the same request id, was accounted before."""
        call = Call(
            id=envelope.id,
            tenant_id=envelope.tenant_id,
            request_id=usage.request_id,
            operation=usage.operation,
            model=usage.model,
            provider=usage.provider,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cost_usd=to_usd(usage.cost_usd),
            estimated=usage.estimated,
            trace_id=usage.trace_id,
            occurred_at=as_utc(envelope.occurred_at),
            calls=usage.calls,
        )
        day = utc_day(call.occurred_at)
        outcome: _Evaluation | None = None

        async def effect(conn: asyncpg.Connection) -> None:
            nonlocal outcome
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", call.tenant_id)
            if await repo.add_call(conn, call):
                await repo.lock_tenant(conn, call.tenant_id)
                outcome = await self._evaluate(conn, call.tenant_id, day)

        await process_once(self.pool, SCHEMA, CONSUMER, envelope, effect)
        if outcome is None:
            return False
        self.metrics.recorded(call)
        if day == self.today():
            self.metrics.utilized(call.tenant_id, outcome.utilization)
        if outcome.announced:
            self.wake_relay()
        return True

    async def _evaluate(self, conn: asyncpg.Connection, tenant_id: str, day: date) -> _Evaluation:
        """The tenant's day and month of `day` against its budget; announces (outbox) each
        level reached for the first time in its period. Call with the tenant locked."""
        stored = await repo.get_budget(conn, tenant_id)
        day_totals, month_totals = await repo.period_totals(conn, tenant_id, day)
        announced = 0
        if stored is not None:
            reached = crossings(stored.budget, "day", day, day_totals)
            reached += crossings(stored.budget, "month", day, month_totals)
            for crossing in reached:
                envelope = _alert(tenant_id, crossing)
                if await repo.add_alert(conn, tenant_id, crossing, envelope.id):
                    await add_to_outbox(conn, SCHEMA, envelope)
                    announced += 1
        return _Evaluation(stored, day, day_totals, month_totals, announced)

    # --- budgets ---------------------------------------------------------------------------

    async def get_budget(self, tenant_id: str) -> dict[str, Any]:
        async with tenant_tx(self.pool, tenant_id) as conn:
            stored = await repo.get_budget(conn, tenant_id)
        return self._budget_out(tenant_id, stored)

    async def put_budget(self, tenant_id: str, body: BudgetIn) -> dict[str, Any]:
        """Replace the budget; a limit the current usage already reaches is announced now."""
        budget = Budget(
            daily_tokens=body.daily_tokens,
            monthly_tokens=body.monthly_tokens,
            daily_usd=body.daily_usd,
            monthly_usd=body.monthly_usd,
            warn_ratio=self.default_warn_ratio if body.warn_ratio is None else Decimal(repr(body.warn_ratio)),
        )
        async with tenant_tx(self.pool, tenant_id) as conn:
            await repo.lock_tenant(conn, tenant_id)
            stored = await repo.put_budget(conn, tenant_id, budget)
            outcome = await self._evaluate(conn, tenant_id, self.today())
        self.metrics.utilized(tenant_id, outcome.utilization)
        if outcome.announced:
            self.wake_relay()
        return self._budget_out(tenant_id, stored)

    def _budget_out(self, tenant_id: str, stored: StoredBudget | None) -> dict[str, Any]:
        budget = stored.budget if stored is not None else Budget(warn_ratio=self.default_warn_ratio)
        return {
            "tenant_id": tenant_id,
            "daily_tokens": budget.daily_tokens,
            "monthly_tokens": budget.monthly_tokens,
            "daily_usd": _money(budget.daily_usd),
            "monthly_usd": _money(budget.monthly_usd),
            "warn_ratio": float(budget.warn_ratio),
            "updated_at": stored.updated_at if stored is not None else None,
        }

    # --- governance ------------------------------------------------------------------------

    async def tenant_usage(self, tenant_id: str, since: date | None, until: date | None) -> dict[str, Any]:
        """Current day and month against the budget, and the usage rollup of since..until."""
        today = self.today()
        try:
            first, last = usage_window(since, until, today)
        except ValueError as exc:
            raise ProblemError(422, str(exc), slug="invalid-filter") from exc
        async with tenant_tx(self.pool, tenant_id) as conn:
            stored = await repo.get_budget(conn, tenant_id)
            day_totals, month_totals = await repo.period_totals(conn, tenant_id, today)
            rows = await repo.usage(conn, tenant_id, first, last)
        outcome = _Evaluation(stored, today, day_totals, month_totals, 0)
        self.metrics.utilized(tenant_id, outcome.utilization)
        return {
            "tenant_id": tenant_id,
            "budget": self._budget_out(tenant_id, stored) if stored is not None else None,
            **outcome.out(),
            "usage": [{**row, "cost_usd": float(row["cost_usd"])} for row in rows],
        }

    async def overview(self, cursor: str | None, limit: int) -> dict[str, Any]:
        """Every tenant with a budget or usage this month, by id, a page at a time."""
        after = decode_cursor(cursor, 1)[0] if cursor else None
        today = self.today()
        async with repo.overview_tx(self.pool) as conn:
            rows = await repo.overview(conn, today, after, limit + 1)
        items = []
        for tenant_id, stored, day_totals, month_totals in rows[:limit]:
            outcome = _Evaluation(stored, today, day_totals, month_totals, 0)
            self.metrics.utilized(tenant_id, outcome.utilization)
            items.append({"tenant_id": tenant_id, **outcome.out()})
        more = len(rows) > limit
        return {"items": items, "next_cursor": encode_cursor(items[-1]["tenant_id"]) if more else None}

    async def logs(self, tenant_id: str, query: CostLogQuery) -> dict[str, Any]:
        """The tenant's recorded calls, newest first, a keyset page at a time."""
        after = None
        if query.cursor:
            occurred_at, call_id = decode_cursor(query.cursor, 2)
            try:
                after = (as_utc(datetime.fromisoformat(occurred_at)), uuid.UUID(call_id))
            except ValueError as exc:
                raise invalid_cursor() from exc
        filters = LogFilters(query.model, query.provider, query.request_id, query.since, query.until)
        async with tenant_tx(self.pool, tenant_id) as conn:
            rows = await repo.logs(conn, tenant_id, filters, after, query.limit + 1)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        next_cursor = (
            encode_cursor(rows[-1]["occurred_at"].isoformat(), str(rows[-1]["id"])) if more else None
        )
        return {
            "items": [{**row, "cost_usd": float(row["cost_usd"])} for row in rows],
            "next_cursor": next_cursor,
        }


class _Evaluation:
    """A tenant's current periods against its budget, and how many alerts were announced."""

    def __init__(
        self, stored: StoredBudget | None, day: date, day_totals: Totals, month_totals: Totals, announced: int
    ) -> None:
        budget = stored.budget if stored is not None else None
        self.day = PeriodStatus.of(budget, "day", day, day_totals)
        self.month = PeriodStatus.of(budget, "month", day, month_totals)
        self.announced = announced

    @property
    def utilization(self) -> Decimal:
        return max(self.day.utilization, self.month.utilization)

    def out(self) -> dict[str, Any]:
        exceeded = self.day.exceeded_limits + self.month.exceeded_limits
        return {
            "current": {"day": _period_out(self.day), "month": _period_out(self.month)},
            "utilization": float(self.utilization),
            "exceeded": bool(exceeded),
            "exceeded_limits": exceeded,
        }


def _period_out(status: PeriodStatus) -> dict[str, Any]:
    return {
        "start": datetime.combine(status.start, time(), UTC),
        "end": datetime.combine(status.end, time(), UTC),
        "tokens": status.totals.tokens,
        "usd": float(status.totals.usd),
        "limit_tokens": status.limit_tokens,
        "limit_usd": _money(status.limit_usd),
        "remaining_tokens": status.remaining_tokens,
        "remaining_usd": _money(status.remaining_usd),
        "utilization": float(status.utilization),
    }


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _alert(tenant_id: str, crossing: Crossing) -> Envelope:
    model = BudgetWarning if crossing.level == "warning" else BudgetExceeded
    event_type = f"budget.{crossing.level}"
    data = model(
        period=crossing.period,
        period_start=crossing.period_start,
        metric=crossing.metric,
        limit=float(crossing.limit),
        used=float(crossing.used),
        ratio=float(crossing.ratio),
    )
    # The same key for the same announcement, so consumers can tell a re-sent one apart.
    key = f"{event_type}:{tenant_id}:{crossing.period}:{crossing.period_start}:{crossing.metric}"
    return new_envelope(event_type, data, tenant_id=tenant_id, producer="cost", idempotency_key=key)
