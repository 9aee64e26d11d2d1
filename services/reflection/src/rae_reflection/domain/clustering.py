"""Grouping memories by meaning: greedy clustering on cosine similarity to group centroids."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Group", "GroupLimits", "cluster", "group_key"]


@dataclass(frozen=True, slots=True)
class GroupLimits:
    threshold: float = 0.5
    min_size: int = 2
    max_size: int = 20
    max_groups: int = 10


@dataclass(slots=True)
class Group:
    members: list[int] = field(default_factory=list)
    total: list[float] = field(default_factory=list)

    def add(self, index: int, vector: Sequence[float]) -> None:
        self.members.append(index)
        self.total = (
            list(vector) if not self.total else [a + b for a, b in zip(self.total, vector, strict=True)]
        )


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def cluster(vectors: Sequence[Sequence[float]], limits: GroupLimits) -> list[list[int]]:
    """Indexes of `vectors` in groups, largest first (ties: earliest first).

    Each vector, in order, joins the open group whose centroid (the sum of its members: same
    direction as their mean) is most similar, when that similarity reaches the threshold;
    otherwise it opens a group. A full group takes no more members. Groups under `min_size`
    are dropped, and only the `max_groups` largest are kept.
    """
    groups: list[Group] = []
    for index, vector in enumerate(vectors):
        best: Group | None = None
        best_score = limits.threshold
        for group in groups:
            if len(group.members) >= limits.max_size:
                continue
            score = _cosine(group.total, vector)
            if score >= best_score:
                best, best_score = group, score
        if best is None:
            best = Group()
            groups.append(best)
        best.add(index, vector)
    kept = [g.members for g in groups if len(g.members) >= limits.min_size]
    kept.sort(key=lambda members: (-len(members), members[0]))
    return kept[: limits.max_groups]


def group_key(source_ids: Sequence[uuid.UUID]) -> str:
    """A group's identity: the same memories make the same key, in any order."""
    joined = ",".join(sorted(str(i) for i in source_ids))
    return hashlib.sha256(joined.encode()).hexdigest()[:32]
