from __future__ import annotations

import math
import uuid

from rae_reflection.domain.clustering import GroupLimits, cluster, group_key
from rae_reflection.domain.prompt import MAX_MEMORY_CHARS, reflection_messages


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


COFFEE = [unit(1, 0.1, 0), unit(0.9, 0.2, 0), unit(1, 0, 0.1)]
TRAINS = [unit(0, 1, 0.1), unit(0.1, 0.9, 0)]
LONER = unit(0, 0, 1)


def test_similar_vectors_share_a_group_and_loners_are_dropped() -> None:
    vectors = [COFFEE[0], TRAINS[0], COFFEE[1], LONER, TRAINS[1], COFFEE[2]]
    assert cluster(vectors, GroupLimits(threshold=0.8)) == [[0, 2, 5], [1, 4]]


def test_small_groups_are_kept_when_allowed() -> None:
    vectors = [COFFEE[0], LONER]
    assert cluster(vectors, GroupLimits(threshold=0.8, min_size=1)) == [[0], [1]]


def test_a_full_group_opens_another() -> None:
    assert cluster(COFFEE, GroupLimits(threshold=0.8, max_size=2)) == [[0, 1]]
    assert cluster(COFFEE, GroupLimits(threshold=0.8, max_size=2, min_size=1)) == [[0, 1], [2]]


def test_only_the_largest_groups_are_kept() -> None:
    vectors = [TRAINS[0], COFFEE[0], COFFEE[1], TRAINS[1], COFFEE[2]]
    assert cluster(vectors, GroupLimits(threshold=0.8, max_groups=1)) == [[1, 2, 4]]


def test_a_threshold_nothing_reaches_groups_nothing() -> None:
    assert cluster(COFFEE + TRAINS, GroupLimits(threshold=1.01)) == []


def test_group_key_ignores_order_and_tells_groups_apart() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert group_key([a, b]) == group_key([b, a])
    assert group_key([a, b]) != group_key([a, c])


def test_prompt_lists_every_memory_on_one_line_and_truncates_long_ones() -> None:
    messages = reflection_messages(["first\nmemory", "x" * (MAX_MEMORY_CHARS + 50)])
    assert [m["role"] for m in messages] == ["system", "user"]
    lines = messages[1]["content"].splitlines()
    assert lines[0] == "- first memory"
    assert lines[1] == "- " + "x" * MAX_MEMORY_CHARS
