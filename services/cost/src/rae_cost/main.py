"""Composition root of the cost service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

from fastapi import FastAPI
from pydantic import Field

from rae_common import resources
from rae_common.app import ServiceState, create_service_app
from rae_common.events import TOPIC_COST, TOPIC_DLQ, TOPIC_ML
from rae_common.outbox_api import router as outbox_router
from rae_common.settings import Infrastructure, ServiceSettings
from rae_cost.api.routes import router
from rae_cost.consumers import usage_handler
from rae_cost.metrics import CostMetrics
from rae_cost.schema import schema_plan
from rae_cost.service import CONSUMER, Clock, CostService


class CostSettings(ServiceSettings):
    uses: ClassVar[frozenset[Infrastructure]] = frozenset({"postgres", "kafka"})
    topics: ClassVar[frozenset[str]] = frozenset({TOPIC_ML, TOPIC_COST, TOPIC_DLQ})
    service_name: str = "cost"
    budget_warn_ratio: float = Field(default=0.8, gt=0, le=1)
    # Usage accounting can wait half a second for its records, and polling the broker ten times
    # a second while idle costs CPU (idle stack: 0.167 -> 0.139 cores with this and the gateway's
    # at 500).
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1)


def _now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: CostSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """`clock` replaces the wall clock that decides the current day and month (tests)."""
    settings = settings or CostSettings()

    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        async with resources.postgres_with_outbox(state, schema_plan()) as pool:
            service = CostService(
                pool,
                metrics,
                state.get("relay").wake,
                clock=clock or _now,
                default_warn_ratio=Decimal(repr(settings.budget_warn_ratio)),
            )
            state.resources["service"] = service
            async with resources.kafka_consumer(
                state,
                group_id=CONSUMER,
                topics=[TOPIC_ML],
                handler=usage_handler(service),
                dlq=state.get("publisher"),
            ):
                yield

    app = create_service_app(
        settings,
        title="RAE cost",
        description="Token and USD accounting per tenant and model, budgets, governance.",
        routers=[router, outbox_router],
        setup=setup,
    )
    # Registered with the app's registry once, not at each run of its lifespan.
    metrics = CostMetrics(app.state.rae.metrics.registry)
    return app
