"""Composition root of the gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

from fastapi import FastAPI
from pydantic import Field

from rae_common import resources
from rae_common.app import ServiceState, Setup, create_service_app
from rae_common.contracts.memory import IngestText
from rae_common.events import TOPIC_COST, Envelope
from rae_common.messaging import ConsumedRecord
from rae_common.settings import Infrastructure, ServiceSettings, require
from rae_gateway.adapters.budget import BudgetStore
from rae_gateway.adapters.keys import KeyStore
from rae_gateway.api import admin, events, governance, graph, outbox, reflection, routes
from rae_gateway.api.limits import QuotaHeadersMiddleware, RateLimits
from rae_gateway.api.models import Problem
from rae_gateway.api.openapi import document_models
from rae_gateway.domain.keys import UsageThrottle
from rae_gateway.domain.limits import TenantLimitsCache
from rae_gateway.schema import schema_plan


class GatewaySettings(ServiceSettings):
    uses: ClassVar[frozenset[Infrastructure]] = frozenset({"postgres", "kafka", "redis", "auth"})
    topics: ClassVar[frozenset[str]] = frozenset({TOPIC_COST})
    service_name: str = "gateway"
    # Requests per minute per tenant (per client address without a credential); 0 = unlimited.
    # A tenant's own limits (PUT /v1/admin/tenants/{id}/limits) take precedence.
    rate_limit_memories_create_per_min: int = Field(default=30, ge=0)
    rate_limit_search_per_min: int = Field(default=60, ge=0)
    rate_limit_ml_generate_per_min: int = Field(default=20, ge=0)
    # How long a replica keeps a tenant's limits before reading them again (its own writes apply at once).
    tenant_limits_cache_s: float = Field(default=5.0, ge=0)
    # At most one write of an API key's last_used_at per this many seconds.
    api_key_touch_interval_s: float = Field(default=60.0, ge=0)
    # Seconds the gateway waits for a service's answer (a 1,000-memory batch embeds for ~15 s on
    # 2 cores; an LLM call may take a minute).
    upstream_timeout_s: float = Field(default=120.0, gt=0)
    # Cost guard: how long replicas share a tenant's budget state read from the cost service
    # (a budget event or a budget change through the gateway drops it at once).
    cost_guard_cache_s: float = Field(default=5.0, ge=0)
    # The budget broadcast only drops cached state early (it expires anyway): it can wait half a
    # second for records instead of polling the broker ten times a second.
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1)
    # True: let token-spending requests through when the budget state cannot be read (cost
    # service or Redis down); false answers 503 instead, so budgets stay binding.
    cost_guard_fail_open: bool = False
    # Output tokens reserved for POST /v1/ml/extract (it takes no max_tokens).
    cost_guard_extract_output_tokens: int = Field(default=2048, ge=1)
    # Retry-After of a refusal while the budget is only held by requests in flight (not spent):
    # they give back what they do not use within about one LLM call.
    cost_guard_in_flight_retry_s: int = Field(default=2, ge=1)

    def default_limits(self) -> dict[str, int]:
        return {
            "memories_create": self.rate_limit_memories_create_per_min,
            "search": self.rate_limit_search_per_min,
            "ml_generate": self.rate_limit_ml_generate_per_min,
        }


def _setup_for(settings: GatewaySettings) -> Setup:
    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        require(settings, "auth")
        async with (
            resources.postgres(state, schema_plan()) as pool,
            resources.redis_client(state) as redis,
        ):
            store = KeyStore(pool)
            state.resources["keys"] = store
            state.resources["key_usage"] = UsageThrottle(settings.api_key_touch_interval_s)
            state.resources["rate_limits"] = RateLimits(
                redis,
                settings.default_limits(),
                TenantLimitsCache(store.tenant_limits, settings.tenant_limits_cache_s),
            )
            assert state.http is not None
            budgets = BudgetStore(
                redis,
                state.http,
                settings.cost_url,
                cache_s=settings.cost_guard_cache_s,
                reservation_ttl_s=settings.upstream_timeout_s,
                fail_open=settings.cost_guard_fail_open,
                extract_output_tokens=settings.cost_guard_extract_output_tokens,
                in_flight_retry_s=settings.cost_guard_in_flight_retry_s,
            )
            state.resources["budget"] = budgets

            async def on_budget_event(envelope: Envelope, _meta: ConsumedRecord) -> None:
                # A limit was reached or neared: the next request reads the new state.
                if envelope.type.startswith("budget."):
                    await budgets.forget(envelope.tenant_id)

            async with resources.kafka_broadcast(
                state, name="gateway-budget", topics=[TOPIC_COST], handler=on_budget_event
            ):
                yield

    return setup


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    app = create_service_app(
        settings,
        title="RAE gateway",
        description="The public API of RAE: long-term memory for LLM agents.",
        routers=[
            routes.router,
            graph.router,
            events.router,
            reflection.router,
            governance.router,
            admin.router,
            outbox.router,
        ],
        setup=_setup_for(settings),
        http_timeout_s=settings.upstream_timeout_s,
    )
    app.add_middleware(QuotaHeadersMiddleware)
    # Models the routes name by reference only (problem documents, the JSON ingestion body).
    document_models(app, [Problem, IngestText])
    return app
