"""The engine's handling of consumed events: log them, evaluate the tenants' rules, record and
start the firings — all in the transaction that records the events in the inbox, so an event
handled twice (a redelivery, a crash before the offset commit) changes nothing the second time.

What one poll brought from a partition is handled in one transaction: the inbox, the log and each
rule's count take one statement per batch (per tenant in it), not per event. The rules are still
evaluated event by event, in order, with the counts as they were after each event, so a batch
fires what the same events handled one at a time would have."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace

from rae_common.events import Envelope
from rae_common.inbox import process_new
from rae_common.messaging import ConsumedEvent, ConsumedRecord
from rae_common.outbox import add_to_outbox
from rae_common.telemetry import inject_context
from rae_events.adapters import event_log
from rae_events.adapters import repository as repo
from rae_events.adapters.event_log import CONSUMER, SCHEMA
from rae_events.domain.rules import (
    RULE_TYPE_OF_EVENT,
    Rule,
    RuleSpec,
    RuleState,
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
        # Tenants known to be set up: saves a statement per batch once a tenant was seen.
        self._set_up: set[str] = set()

    async def handle(self, envelope: Envelope, meta: ConsumedRecord) -> bool:
        """Handle a consumed event; False when it was handled before (nothing happens again)."""
        [new] = await self.handle_batch([ConsumedEvent(envelope, meta, otel_context.get_current())])
        return new

    async def handle_batch(self, events: Sequence[ConsumedEvent]) -> list[bool]:
        """Handle consumed events in one transaction; for each, whether it was new (False: it was
        handled before, or came twice in the batch, and nothing happens again)."""
        consumed: dict[uuid.UUID, ConsumedEvent] = {}
        for event in events:
            consumed.setdefault(event.envelope.id, event)
        fired: list[repo.NewFiring] = []
        set_up: set[str] = set()

        async def effect(conn: asyncpg.Connection, new: list[Envelope]) -> None:
            for tenant_id, envelopes in _by_tenant(new).items():
                group = [consumed[e.id] for e in envelopes]
                await repo.declare_tenant(conn, tenant_id)
                await event_log.insert(conn, [(e.envelope, e.meta, _trace_id(e)) for e in group])
                counted = [e for e in group if e.envelope.type in RULE_TYPE_OF_EVENT]
                if not counted:
                    continue
                if tenant_id not in self._set_up:
                    await repo.ensure_tenant(conn, tenant_id, self.default_rule)
                set_up.add(tenant_id)
                fired.extend(await self._evaluate(conn, tenant_id, counted))

        envelopes = [e.envelope for e in consumed.values()]
        new = {e.id for e in await process_new(self.pool, SCHEMA, CONSUMER, envelopes, effect)}
        if len(self._set_up) + len(set_up) > _MAX_KNOWN_TENANTS:
            self._set_up.clear()  # forgetting costs one statement per tenant, not correctness
        self._set_up |= set_up
        self.metrics.batch_events.observe(len(events))
        answers = []
        for event in events:
            envelope = event.envelope
            if envelope.id in new:
                new.discard(envelope.id)
                answers.append(True)
                self.metrics.consumed.labels(envelope.type).inc()
                self.metrics.processing.labels(envelope.type).observe(_age_s(envelope.occurred_at))
            else:
                answers.append(False)
                self.metrics.duplicates.labels(envelope.type).inc()
        self._started(fired)
        return answers

    async def _evaluate(
        self, conn: asyncpg.Connection, tenant_id: str, events: Sequence[ConsumedEvent]
    ) -> list[repo.NewFiring]:
        rules: list[Rule] = []
        for rule_type in dict.fromkeys(RULE_TYPE_OF_EVENT[e.envelope.type] for e in events):
            rules.extend(await repo.enabled_rules(conn, tenant_id, rule_type))
        # Each rule counts all its matches in one statement; `states` then holds its state before
        # the batch and is moved on event by event below.
        hits: dict[uuid.UUID, set[uuid.UUID]] = {}
        states: dict[uuid.UUID, RuleState] = {}
        for rule in rules:
            matching = {
                e.envelope.id
                for e in events
                if RULE_TYPE_OF_EVENT[e.envelope.type] == rule.spec.type and matches(rule.spec, e.envelope)
            }
            if matching:
                after = await repo.count_match(conn, rule, len(matching))
                hits[rule.id] = matching
                states[rule.id] = dataclasses.replace(after, matched=after.matched - len(matching))
        fired: list[repo.NewFiring] = []
        for event in events:
            for rule in rules:
                if event.envelope.id not in hits.get(rule.id, ()):
                    continue
                state = states[rule.id] = dataclasses.replace(
                    states[rule.id], matched=states[rule.id].matched + 1
                )
                with event.activated():
                    firing = await self._fire(conn, rule, event.envelope, state)
                if firing is None:
                    continue
                fired.append(firing)
                if firing.status != "skipped":
                    states[rule.id] = dataclasses.replace(
                        state, last_fired_at=event.envelope.occurred_at, matched_at_fire=state.matched
                    )
        return fired

    async def _fire(
        self, conn: asyncpg.Connection, rule: Rule, envelope: Envelope, state: RuleState
    ) -> repo.NewFiring | None:
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


def _by_tenant(envelopes: Sequence[Envelope]) -> dict[str, list[Envelope]]:
    groups: dict[str, list[Envelope]] = {}
    for envelope in envelopes:
        groups.setdefault(envelope.tenant_id, []).append(envelope)
    return groups


def _trace_id(event: ConsumedEvent) -> str | None:
    ctx = trace.get_current_span(event.context).get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _age_s(occurred_at: datetime) -> float:
    return max(0.0, (datetime.now(UTC) - occurred_at).total_seconds())
