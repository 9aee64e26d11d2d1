"""Fusion of the graph's and hybrid search's rankings of memories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Fused", "fuse"]

# The usual reciprocal-rank constant: it keeps one list's first place from drowning the other.
RRF_K = 60


@dataclass(frozen=True, slots=True)
class Fused:
    memory_id: str
    score: float
    graph_rank: int | None
    hybrid_rank: int | None


def fuse(
    graph: Sequence[str], hybrid: Sequence[str], *, graph_weight: float, hybrid_weight: float, k: int
) -> list[Fused]:
    """Weighted reciprocal-rank fusion of two rankings of memory ids, best first, `k` at most."""
    graph_ranks = {memory_id: rank for rank, memory_id in enumerate(graph, 1)}
    hybrid_ranks = {memory_id: rank for rank, memory_id in enumerate(hybrid, 1)}
    fused = []
    for memory_id in dict.fromkeys([*graph, *hybrid]):
        g, h = graph_ranks.get(memory_id), hybrid_ranks.get(memory_id)
        score = (graph_weight / (RRF_K + g) if g else 0.0) + (hybrid_weight / (RRF_K + h) if h else 0.0)
        fused.append(Fused(memory_id, score, g, h))
    fused.sort(key=lambda f: (-f.score, f.graph_rank or 10**9, f.hybrid_rank or 10**9))
    return fused[:k]
