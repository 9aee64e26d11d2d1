from __future__ import annotations

from rae_graph.domain.model import EdgeRow, timestamp
from rae_graph.domain.ranking import fuse
from rae_graph.domain.traversal import expand


def test_fusion_lifts_what_both_rankings_found() -> None:
    fused = fuse(["g1", "both"], ["h1", "h2", "both"], graph_weight=1.0, hybrid_weight=1.0, k=3)
    assert [f.memory_id for f in fused] == ["both", "g1", "h1"]
    assert (fused[0].graph_rank, fused[0].hybrid_rank) == (2, 3)


def test_timestamps_sort_as_strings_in_time_order() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    early = datetime(2026, 1, 1, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    late = datetime(2026, 1, 2, 4, 30, tzinfo=UTC)
    assert timestamp(early) < timestamp(late)
    assert timestamp(late) == "2026-01-02T04:30:00.000000Z"


def _edge(edge_id: str, source: str, target: str) -> EdgeRow:
    return EdgeRow(edge_id, source, source, "R", target, target, 1.0, "", None, "", None, [])


GRAPH = [_edge("ab", "a", "b"), _edge("bc", "b", "c"), _edge("dc", "d", "c"), _edge("ce", "c", "e")]


async def fetch(frontier: list[str]) -> list[EdgeRow]:
    return [e for e in GRAPH if e.source_id in frontier or e.target_id in frontier]


async def test_expansion_keeps_the_path_to_every_node_and_stops_at_depth() -> None:
    found = await expand(["a"], 2, fetch, max_nodes=100)
    assert set(found.paths) == {"a", "b", "c"}
    assert [e.id for e in found.paths["c"]] == ["ab", "bc"]
    assert not found.truncated


async def test_expansion_follows_edges_against_their_direction() -> None:
    found = await expand(["e"], 2, fetch, max_nodes=100)
    assert [e.id for e in found.paths["d"]] == ["ce", "dc"]


async def test_the_size_cap_truncates() -> None:
    found = await expand(["c"], 3, fetch, max_nodes=2)
    assert len(found.paths) == 2 and found.truncated
