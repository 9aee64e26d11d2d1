"""Hybrid ranking: reciprocal rank fusion of vector and lexical ranks, plus recency and importance.

Every part is scaled to [0, 1] so the reported `scores` explain the final `score`:
- vector, lexical: normalised RRF, `(c + 1) / (c + rank)` for a 1-based rank (1.0 for the top
  hit, 0 when the candidate list did not contain it), c = 60 as in the RRF paper;
- recency: `0.5 ** (age / half_life)`;
- importance: as stored (0..1).
The score is their weighted mean.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Candidate", "Ranked", "Weights", "fuse", "rrf"]

RRF_C = 60


@dataclass(frozen=True, slots=True)
class Weights:
    vector: float = 1.0
    lexical: float = 0.5
    recency: float = 0.1
    importance: float = 0.1

    def total(self) -> float:
        return self.vector + self.lexical + self.recency + self.importance


@dataclass(frozen=True, slots=True)
class Candidate:
    id: uuid.UUID
    created_at: datetime
    importance: float


@dataclass(frozen=True, slots=True)
class Ranked:
    id: uuid.UUID
    score: float
    vector: float
    lexical: float
    recency: float
    importance: float


def rrf(rank: int | None, c: int = RRF_C) -> float:
    return 0.0 if rank is None else (c + 1) / (c + rank)


def fuse(
    candidates: Mapping[uuid.UUID, Candidate],
    vector_ranks: Mapping[uuid.UUID, int],
    lexical_ranks: Mapping[uuid.UUID, int],
    *,
    weights: Weights,
    now: datetime,
    half_life: timedelta,
    k: int,
) -> list[Ranked]:
    total = weights.total()
    if total <= 0:
        raise ValueError("at least one weight must be positive")
    half_life_s = max(half_life.total_seconds(), 1.0)
    ranked = []
    for memory_id, candidate in candidates.items():
        age_s = max((now - candidate.created_at).total_seconds(), 0.0)
        parts = (
            rrf(vector_ranks.get(memory_id)),
            rrf(lexical_ranks.get(memory_id)),
            math.pow(0.5, age_s / half_life_s),
            min(max(candidate.importance, 0.0), 1.0),
        )
        score = (
            weights.vector * parts[0]
            + weights.lexical * parts[1]
            + weights.recency * parts[2]
            + weights.importance * parts[3]
        ) / total
        ranked.append(Ranked(memory_id, score, *parts))
    # Ties broken by id so results are deterministic.
    ranked.sort(key=lambda r: (-r.score, str(r.id)))
    return ranked[:k]
