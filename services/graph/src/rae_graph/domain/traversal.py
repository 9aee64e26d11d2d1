"""Breadth-first expansion of a neighbourhood, hop by hop, with a size cap.

One query per hop instead of a variable-length pattern: portable across Bolt servers, and the
cap applies while expanding instead of after a server has enumerated every path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from rae_graph.domain.model import EdgeRow

__all__ = ["Expansion", "expand"]

FetchEdges = Callable[[list[str]], Awaitable[Sequence[EdgeRow]]]


@dataclass
class Expansion:
    paths: dict[str, list[EdgeRow]] = field(default_factory=dict)
    """Node id -> the edges leading to it from a seed (empty for a seed)."""
    edges: dict[str, tuple[EdgeRow, list[EdgeRow]]] = field(default_factory=dict)
    """Edge id -> the edge and the path ending with it, in discovery order (nearest first)."""
    truncated: bool = False


async def expand(seeds: Sequence[str], depth: int, fetch: FetchEdges, max_nodes: int) -> Expansion:
    found = Expansion(paths={seed: [] for seed in seeds})
    frontier = list(found.paths)
    for _ in range(depth):
        if not frontier:
            break
        on_frontier = set(frontier)
        following: list[str] = []
        for edge in await fetch(frontier):
            if edge.id in found.edges:
                continue
            near, far = (
                (edge.source_id, edge.target_id)
                if edge.source_id in on_frontier
                else (edge.target_id, edge.source_id)
            )
            if far not in found.paths and len(found.paths) >= max_nodes:
                found.truncated = True
                continue
            path = [*found.paths[near], edge]
            found.edges[edge.id] = (edge, path)
            if far not in found.paths:
                found.paths[far] = path
                following.append(far)
        frontier = following
    return found
