from __future__ import annotations

import math
import uuid

import pytest

from rae_memory.evaluation import ndcg_at_k, recall_at_k, reciprocal_rank

A, B, C, D = (uuid.uuid4() for _ in range(4))


def test_recall_counts_relevant_items_in_the_first_k() -> None:
    assert recall_at_k([A, C, B], {A, B}, 3) == 1.0
    assert recall_at_k([A, C, B], {A, B}, 2) == 0.5
    assert recall_at_k([C, D], {A, B}, 2) == 0.0


def test_reciprocal_rank_is_that_of_the_first_relevant_result_within_k() -> None:
    assert reciprocal_rank([A, B], {A}, 2) == 1.0
    assert reciprocal_rank([C, D, B], {A, B}, 3) == pytest.approx(1 / 3)
    assert reciprocal_rank([C, D, B], {B}, 2) == 0.0


def test_ndcg_is_one_for_a_perfect_ranking_and_discounts_late_hits() -> None:
    assert ndcg_at_k([A, B, C], {A, B}, 3) == pytest.approx(1.0)
    assert ndcg_at_k([C, A], {A}, 2) == pytest.approx(1 / math.log2(3))
    # Two relevant, one found at rank 2: DCG 1/log2(3) against the ideal 1 + 1/log2(3).
    assert ndcg_at_k([C, A], {A, B}, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k([C, D], {A}, 2) == 0.0


def test_more_relevant_items_than_k_can_still_score_one() -> None:
    assert ndcg_at_k([A, B], {A, B, C}, 2) == pytest.approx(1.0)
    assert recall_at_k([A, B], {A, B, C}, 2) == pytest.approx(2 / 3)
