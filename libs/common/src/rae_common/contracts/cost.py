"""The cost and governance API contract (cost service routes, exposed by the gateway)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rae_common.auth import validate_tenant_id
from rae_common.contracts.common import TimeWindow, UtcDatetime

__all__ = [
    "MAX_USAGE_DAYS",
    "BudgetIn",
    "BudgetLimit",
    "BudgetOut",
    "CostLog",
    "CostLogPage",
    "CostLogQuery",
    "CurrentUsage",
    "DailyUsage",
    "Overview",
    "OverviewItem",
    "OverviewQuery",
    "PeriodUsage",
    "TenantId",
    "TenantUsage",
    "UsageQuery",
]

MAX_TOKENS = 10**15
MAX_USAGE_DAYS = 366

TenantId = Annotated[str, AfterValidator(validate_tenant_id)]
BudgetLimit = Literal["daily_tokens", "daily_usd", "monthly_tokens", "monthly_usd"]


Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
Usd = Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=10)]


class BudgetIn(BaseModel):
    """A tenant's whole budget (a PUT replaces it). A null or absent limit is unlimited; usage
    at or over a limit exceeds it, at `warn_ratio` of it warns."""

    model_config = ConfigDict(extra="forbid")

    daily_tokens: Tokens | None = Field(default=None, description="Input + output tokens per UTC day.")
    monthly_tokens: Tokens | None = Field(default=None, description="Tokens per UTC calendar month.")
    daily_usd: Usd | None = Field(default=None, description="USD per UTC day.")
    monthly_usd: Usd | None = Field(default=None, description="USD per UTC calendar month.")
    warn_ratio: float | None = Field(
        default=None, gt=0, le=1, description="Share of a limit that warns; null: the service default (0.8)."
    )


class BudgetOut(BaseModel):
    tenant_id: str
    daily_tokens: int | None
    monthly_tokens: int | None
    daily_usd: float | None
    monthly_usd: float | None
    warn_ratio: float
    updated_at: datetime | None = Field(description="Null: the tenant never set a budget (unlimited).")


class PeriodUsage(BaseModel):
    """Usage of the current UTC day or month against the budget's limits for it."""

    start: datetime
    end: datetime = Field(description="Exclusive.")
    tokens: int
    usd: float
    limit_tokens: int | None
    limit_usd: float | None
    remaining_tokens: int | None = Field(description="Null when unlimited; never below 0.")
    remaining_usd: float | None
    utilization: float = Field(description="Highest used/limit of the period's limits; 0 when unlimited.")


class CurrentUsage(BaseModel):
    day: PeriodUsage
    month: PeriodUsage


class DailyUsage(BaseModel):
    day: date
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    calls: int


class TenantUsage(BaseModel):
    tenant_id: str
    budget: BudgetOut | None
    current: CurrentUsage
    utilization: float = Field(description="Highest utilization of the day and the month.")
    exceeded: bool = Field(description="A limit of the current day or month is reached.")
    exceeded_limits: list[BudgetLimit]
    usage: list[DailyUsage] = Field(description="Per day, model and provider; newest day first.")


class UsageQuery(BaseModel):
    """Days of `GET /v1/governance/tenant/{id}` (UTC dates, both inclusive, at most
    `MAX_USAGE_DAYS` of them)."""

    since: date | None = Field(default=None, description="Default: 29 days before `until`.")
    until: date | None = Field(default=None, description="Default: today.")


class OverviewItem(BaseModel):
    tenant_id: str
    current: CurrentUsage
    utilization: float
    exceeded: bool
    exceeded_limits: list[BudgetLimit]


class Overview(BaseModel):
    items: list[OverviewItem] = Field(description="Tenants with a budget or usage this month, by id.")
    next_cursor: str | None


class OverviewQuery(BaseModel):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=100, ge=1, le=500)


class CostLog(BaseModel):
    id: uuid.UUID = Field(description="Id of the event that recorded it.")
    tenant_id: str
    request_id: str
    operation: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    estimated: bool
    trace_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    calls: int = Field(
        default=1, description="Model calls in this row: 1, or more for ml's roll-up of embedding calls."
    )


class CostLogPage(BaseModel):
    items: list[CostLog]
    next_cursor: str | None


class CostLogQuery(TimeWindow):
    """Filters of `GET /v1/cost/logs` (newest first)."""

    model: str | None = Field(default=None, min_length=1, max_length=200)
    provider: str | None = Field(default=None, min_length=1, max_length=200)
    request_id: str | None = Field(default=None, min_length=1, max_length=200)
    since: UtcDatetime | None = Field(default=None, description="occurred_at at or after.")
    until: UtcDatetime | None = Field(default=None, description="occurred_at before.")
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=500)
