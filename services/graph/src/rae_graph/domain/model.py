"""What the graph holds, as the service sees it (the adapter maps records onto these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["EdgeRow", "NodeRow", "Counts", "timestamp"]


def timestamp(at: datetime | None = None) -> str:
    """RFC 3339 UTC with fixed width, so that string order is time order on any graph server."""
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class NodeRow:
    id: str
    name: str
    type: str
    aliases: list[str]
    memory_ids: list[str]
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class EdgeRow:
    id: str
    source_id: str
    source: str
    relation: str
    target_id: str
    target: str
    confidence: float
    valid_from: str
    valid_to: str | None
    created_at: str
    expired_at: str | None
    memory_ids: list[str]


@dataclass(slots=True)
class Counts:
    nodes_created: int = 0
    nodes_merged: int = 0
    edges_created: int = 0
    edges_closed: int = 0
    edges_pruned: int = 0
    nodes_pruned: int = 0
