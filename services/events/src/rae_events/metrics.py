"""Prometheus metrics of the event engine."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["EventsMetrics"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class EventsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "rae_events_consumed",
            "Events the engine handled (each event once), by type",
            ["type"],
            registry=registry,
        )
        self.duplicates = Counter(
            "rae_events_duplicates",
            "Redelivered events the inbox recognised and skipped, by type",
            ["type"],
            registry=registry,
        )
        self.processing = Histogram(
            "rae_events_processing_seconds",
            "From an event's occurred_at to the commit of its handling (log, rules, firings), by type",
            ["type"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_events = Histogram(
            "rae_events_batch_events",
            "Events handled in one transaction (what one poll brought from a partition)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=registry,
        )
        self.firings = Counter(
            "rae_events_firings",
            "Rule firings by rule type, action (event, webhook) and outcome (fired, skipped: cooldown)",
            ["rule_type", "action", "outcome"],
            registry=registry,
        )
        self.firing_latency = Histogram(
            "rae_events_firing_latency_seconds",
            "From the source event's occurred_at to delivery (event: in the outbox; webhook: 2xx)",
            ["action"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.webhook_failures = Counter(
            "rae_events_webhook_failures",
            "Webhook tries that failed (non-2xx answer, timeout, connection error)",
            registry=registry,
        )
        self.webhook_retries = Counter(
            "rae_events_webhook_retries",
            "Webhook retries scheduled after a failed try",
            registry=registry,
        )
        self.dead_lettered = Counter(
            "rae_events_dead_lettered",
            "Webhooks that used up their attempts and went to the dead-letter queue",
            registry=registry,
        )
        self.dlq_size = Gauge(
            "rae_events_dlq_size",
            "Dead-letter queue entries not replayed, of every tenant (webhook, consumer), sampled",
            ["kind"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "rae_events_consumer_lag",
            "Records of a partition the engine's consumer group has not committed yet, sampled",
            ["topic", "partition"],
            registry=registry,
        )
