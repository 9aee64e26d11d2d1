"""The engine's handling of one consumed event: log it, evaluate the tenant's rules, record and
start the firings — all in the transaction that records the event in the inbox, so an event
handled twice (a redelivery, a crash before the offset commit) changes nothing the second time."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from opentelemetry import trace

from rae_common.events import Envelope
from rae_common.inbox import process_once
from rae_common.messaging import ConsumedRecord
from rae_common.outbox import add_to_outbox
from rae_common.telemetry import inject_context
from rae_events.adapters import event_log
from rae_events.adapters import repository as repo
from rae_events.adapters.event_log import CONSUMER, SCHEMA
from rae_events.domain.rules import (
    RULE_TYPE_OF_EVENT,
    Rule,
    RuleSpec,
    command,
    in_cooldown,
    matches,
    trigger_key,
)
from rae_events.metrics import EventsMetrics

__all__ = ["EventEngine"]

_log = logging.getLogger("rae.events.engine")
_MAX_KNOWN_TENANTS = 100_000


class EventEngine:
    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: EventsMetrics,
        *,
        wake_relay: Callable[[], None],
        wake_delivery: Callable[[], None],
        default_rule: RuleSpec,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.wake_relay = wake_relay
        self.wake_delivery = wake_delivery
        self.default_rule = default_rule
        # Tenants known to be set up: saves a statement per event once a tenant was seen.
        self._set_up: set[str] = set()

    async def handle(self, envelope: Envelope, meta: ConsumedRecord) -> bool:
        """Handle a consumed event; False when it was handled before (nothing happens again)."""
        ctx = trace.get_current_span().get_span_context()
        trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None
        tenant_id = envelope.tenant_id
        rule_type = RULE_TYPE_OF_EVENT.get(envelope.type)
        fired: list[repo.NewFiring] = []

        async def effect(conn: asyncpg.Connection) -> None:
            await repo.declare_tenant(conn, tenant_id)
            await event_log.insert(conn, envelope, meta, trace_id)
            if rule_type is None:
                return
            if tenant_id not in self._set_up:
                await repo.ensure_tenant(conn, tenant_id, self.default_rule)
            for rule in await repo.enabled_rules(conn, tenant_id, rule_type):
                firing = await self._evaluate(conn, rule, envelope)
                if firing is not None:
                    fired.append(firing)

        if not await process_once(self.pool, SCHEMA, CONSUMER, envelope, effect):
            self.metrics.duplicates.labels(envelope.type).inc()
            return False
        if rule_type is not None:
            if len(self._set_up) >= _MAX_KNOWN_TENANTS:
                self._set_up.clear()  # forgetting costs one statement per tenant, not correctness
            self._set_up.add(tenant_id)
        self.metrics.consumed.labels(envelope.type).inc()
        self.metrics.processing.labels(envelope.type).observe(_age_s(envelope.occurred_at))
        self._started(fired)
        return True

    async def _evaluate(
        self, conn: asyncpg.Connection, rule: Rule, envelope: Envelope
    ) -> repo.NewFiring | None:
        if not matches(rule.spec, envelope):
            return None
        state = await repo.count_match(conn, rule)
        key = trigger_key(rule, envelope, state)
        if key is None:
            return None
        firing_id = uuid.uuid4()
        skipped = in_cooldown(rule.spec.cooldown_s, state.last_fired_at, envelope.occurred_at)
        headers: dict[str, str] = {}
        inject_context(headers)
        firing = repo.NewFiring(
            id=firing_id,
            rule=rule,
            trigger_key=key,
            source=envelope,
            status="skipped" if skipped else ("pending" if rule.action_kind == "webhook" else "delivered"),
            command=command(rule, envelope, state, firing_id, key),
            trace_headers=headers,
        )
        if not await repo.insert_firing(conn, firing):
            _log.info("trigger %s fired before; not again", key)
            return None
        if not skipped:
            await repo.mark_fired(conn, rule, envelope.occurred_at, state.matched)
            if rule.action_kind == "event":
                await add_to_outbox(conn, SCHEMA, firing.command)
        return firing

    def _started(self, fired: list[repo.NewFiring]) -> None:
        for firing in fired:
            outcome = "skipped" if firing.status == "skipped" else "fired"
            self.metrics.firings.labels(firing.rule.spec.type, firing.rule.action_kind, outcome).inc()
            if firing.status == "delivered":
                self.metrics.firing_latency.labels("event").observe(_age_s(firing.source.occurred_at))
        if any(f.status == "delivered" for f in fired):
            self.wake_relay()
        if any(f.status == "pending" for f in fired):
            self.wake_delivery()


def _age_s(occurred_at: datetime) -> float:
    return max(0.0, (datetime.now(UTC) - occurred_at).total_seconds())
