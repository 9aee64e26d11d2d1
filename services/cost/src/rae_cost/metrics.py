"""Prometheus metrics of recorded usage and budget utilization."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge

from rae_cost.domain.calls import Call

__all__ = ["CostMetrics"]


class CostMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter(
            "rae_llm_tokens",
            "LLM tokens recorded (each call once), by tenant, model and direction (input, output)",
            ["tenant", "model", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "rae_llm_cost_usd",
            "LLM cost recorded in USD (each call once), by tenant and model",
            ["tenant", "model"],
            registry=registry,
        )
        self.utilization = Gauge(
            "rae_budget_utilization",
            "Highest used/limit of the tenant's current day and month limits (0: unlimited), "
            "as of the last usage, budget change or read of the tenant",
            ["tenant"],
            registry=registry,
        )

    def recorded(self, call: Call) -> None:
        self.tokens.labels(call.tenant_id, call.model, "input").inc(call.input_tokens)
        self.tokens.labels(call.tenant_id, call.model, "output").inc(call.output_tokens)
        self.cost.labels(call.tenant_id, call.model).inc(float(call.cost_usd))

    def utilized(self, tenant_id: str, utilization: Decimal) -> None:
        self.utilization.labels(tenant_id).set(float(utilization))
