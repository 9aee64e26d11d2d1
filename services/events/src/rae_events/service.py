"""Use cases of the events API: rules, the firing audit, the dead-letter queue and its replay."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from rae_common.contracts.events import (
    DeadLetterQuery,
    EventAction,
    EventActionOut,
    FiringQuery,
    RuleQuery,
    WebhookActionOut,
)
from rae_common.db import tenant_tx
from rae_common.errors import ProblemError
from rae_common.messaging import BrokerUnavailable, KafkaPublisher, OutgoingRecord
from rae_common.paging import decode_cursor, encode_cursor, invalid_cursor
from rae_events.adapters import event_log
from rae_events.adapters import repository as repo
from rae_events.adapters.dead_letters import DLQ_HEADER_PREFIX
from rae_events.domain.rules import RuleSpec

__all__ = ["EventsService"]


class EventsService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: KafkaPublisher,
        *,
        wake_delivery: Callable[[], None],
        default_rule: RuleSpec,
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.wake_delivery = wake_delivery
        self.default_rule = default_rule

    async def log(
        self, tenant_id: str, *, event_type: str | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        after = _keyset(cursor)
        async with tenant_tx(self.pool, tenant_id) as conn:
            items = await event_log.page(conn, tenant_id, event_type=event_type, after=after, limit=limit + 1)
        return _page(items, limit, "received_at", "event_id")

    # --- rules -------------------------------------------------------------------------------

    async def list_rules(self, tenant_id: str, query: RuleQuery) -> dict[str, Any]:
        """The tenant's rules, oldest first; a tenant's first use gives it the default rule."""
        after = _keyset(query.cursor)
        async with tenant_tx(self.pool, tenant_id) as conn:
            await repo.ensure_tenant(conn, tenant_id, self.default_rule)
            rows = await repo.rules(conn, tenant_id, query.type, query.enabled, after, query.limit + 1)
        return _page([_rule_out(row) for row in rows], query.limit, "created_at")

    async def create_rule(self, tenant_id: str, spec: RuleSpec) -> dict[str, Any]:
        # A tenant whose first use is creating a rule has rules: it does not get the default one.
        async with tenant_tx(self.pool, tenant_id) as conn:
            await repo.ensure_tenant(conn, tenant_id, None)
            try:
                row = await repo.insert_rule(conn, tenant_id, uuid.uuid4(), spec)
            except asyncpg.UniqueViolationError as exc:
                raise _name_taken(spec.name) from exc
        return _rule_out(row)

    async def get_rule(self, tenant_id: str, rule_id: uuid.UUID) -> dict[str, Any]:
        async with tenant_tx(self.pool, tenant_id) as conn:
            await repo.ensure_tenant(conn, tenant_id, self.default_rule)
            row = await repo.get_rule(conn, tenant_id, rule_id)
        if row is None:
            raise _no_rule(rule_id)
        return _rule_out(row)

    async def replace_rule(self, tenant_id: str, rule_id: uuid.UUID, spec: RuleSpec) -> dict[str, Any]:
        async with tenant_tx(self.pool, tenant_id) as conn:
            await repo.ensure_tenant(conn, tenant_id, self.default_rule)
            try:
                row = await repo.replace_rule(conn, tenant_id, rule_id, spec)
            except asyncpg.UniqueViolationError as exc:
                raise _name_taken(spec.name) from exc
        if row is None:
            raise _no_rule(rule_id)
        return _rule_out(row)

    async def delete_rule(self, tenant_id: str, rule_id: uuid.UUID) -> None:
        async with tenant_tx(self.pool, tenant_id) as conn:
            await repo.ensure_tenant(conn, tenant_id, self.default_rule)
            deleted = await repo.delete_rule(conn, tenant_id, rule_id)
        if not deleted:
            raise _no_rule(rule_id)

    # --- the audit and the DLQ ---------------------------------------------------------------

    async def firings(self, tenant_id: str, query: FiringQuery) -> dict[str, Any]:
        """The tenant's firings, newest first, a keyset page at a time."""
        filters = repo.FiringFilters(query.rule_id, query.status, query.since, query.until)
        async with tenant_tx(self.pool, tenant_id) as conn:
            rows = await repo.firings(conn, tenant_id, filters, _keyset(query.cursor), query.limit + 1)
        return _page(rows, query.limit, "created_at")

    async def dead_letters(self, tenant_id: str, query: DeadLetterQuery) -> dict[str, Any]:
        async with tenant_tx(self.pool, tenant_id) as conn:
            rows = await repo.dlq_page(conn, tenant_id, query.kind, _keyset(query.cursor), query.limit + 1)
        return _page(rows, query.limit, "dead_at")

    async def replay(self, tenant_id: str, entry_id: uuid.UUID) -> dict[str, Any]:
        """A dead webhook goes back to the delivery queue with its attempts reset; a consumer's
        dead letter is published again to the topic it came from."""
        async with tenant_tx(self.pool, tenant_id) as conn:
            replayed_at = await repo.requeue(conn, tenant_id, entry_id)
            if replayed_at is not None:
                kind, detail = "webhook", "the delivery is queued again with its attempts reset"
            elif (status := await repo.firing_status(conn, tenant_id, entry_id)) is not None:
                raise ProblemError(
                    409, f"Firing {entry_id} is {status}, not dead: nothing to replay.", slug="not-dead"
                )
            else:
                replayed_at = await self._republish(conn, tenant_id, entry_id)
                kind, detail = "consumer", "the record is published again to its source topic"
        if kind == "webhook":
            self.wake_delivery()
        return {"id": entry_id, "kind": kind, "replayed_at": replayed_at, "detail": detail}

    async def _republish(self, conn: asyncpg.Connection, tenant_id: str, entry_id: uuid.UUID) -> datetime:
        row = await repo.lock_dead_letter(conn, tenant_id, entry_id)
        if row is None:
            raise ProblemError(404, f"No dead-letter entry {entry_id}.", slug="dead-letter-not-found")
        if row["replayed_at"] is not None:
            raise ProblemError(409, f"Dead letter {entry_id} was replayed already.", slug="already-replayed")
        headers = {k: v for k, v in (row["headers"] or {}).items() if not k.startswith(DLQ_HEADER_PREFIX)}
        record = OutgoingRecord(row["source_topic"], bytes(row["payload"]), row["record_key"], headers)
        try:
            await self.publisher.send_records([record])
        except BrokerUnavailable as exc:
            raise ProblemError(503, "The broker is not reachable; try the replay again later.") from exc
        return await repo.mark_replayed(conn, tenant_id, entry_id)


def _rule_out(row: Any) -> dict[str, Any]:
    rule = repo.to_rule(row)
    action = rule.spec.action
    out_action: EventActionOut | WebhookActionOut = (
        EventActionOut(kind="event", event_type=rule.event_type)
        if isinstance(action, EventAction)
        else WebhookActionOut(kind="webhook", url=str(action.url), event_type=rule.event_type)
    )
    return {
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "name": rule.spec.name,
        "type": rule.spec.type,
        "params": rule.spec.params,
        "action": out_action,
        "cooldown_s": rule.spec.cooldown_s,
        "max_attempts": rule.spec.max_attempts,
        "enabled": rule.spec.enabled,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _keyset(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    at, item_id = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(at), uuid.UUID(item_id)
    except ValueError as exc:
        raise invalid_cursor() from exc


def _page(items: list[Any], limit: int, time_key: str, id_key: str = "id") -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    last = items[-1] if items else None
    next_cursor = encode_cursor(last[time_key].isoformat(), str(last[id_key])) if more and last else None
    return {"items": items, "next_cursor": next_cursor}


def _no_rule(rule_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, f"No rule {rule_id}.", slug="rule-not-found")


def _name_taken(name: str) -> ProblemError:
    return ProblemError(409, f"A rule named {name!r} exists already.", slug="rule-name-taken")
