"""Hybrid ranking: each part explains the score; fusion rewards agreement."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from rae_memory.domain.model import Layer, content_hash, expiry_for
from rae_memory.domain.ranking import Candidate, Weights, fuse, rrf

NOW = datetime(2026, 11, 21, tzinfo=UTC)
HALF_LIFE = timedelta(days=30)


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=i + 1) for i in range(n)]


def candidates(memory_ids, age_days=0.0, importance=0.5):
    return {i: Candidate(i, NOW - timedelta(days=age_days), importance) for i in memory_ids}


def test_rrf_is_one_at_the_top_and_decays() -> None:
    assert rrf(1) == 1.0
    assert rrf(None) == 0.0
    assert 1.0 > rrf(2) > rrf(10) > rrf(100) > 0


def test_agreement_of_both_retrievers_wins() -> None:
    a, b, c = ids(3)
    ranked = fuse(
        candidates([a, b, c]),
        {a: 1, b: 2},
        {c: 1, b: 2},
        weights=Weights(),
        now=NOW,
        half_life=HALF_LIFE,
        k=3,
    )
    assert ranked[0].id == b
    assert ranked[0].vector > 0 and ranked[0].lexical > 0


def test_scores_are_the_weighted_mean_of_the_parts() -> None:
    (a,) = ids(1)
    w = Weights(vector=2, lexical=1, recency=0.5, importance=0.5)
    (r,) = fuse(
        candidates([a], age_days=30, importance=0.8), {a: 1}, {}, weights=w, now=NOW, half_life=HALF_LIFE, k=1
    )
    assert r.recency == pytest.approx(0.5)
    assert r.importance == pytest.approx(0.8)
    assert r.score == pytest.approx((2 * 1.0 + 0 + 0.5 * 0.5 + 0.5 * 0.8) / 4)


def test_recency_breaks_a_tie_between_equal_matches() -> None:
    old, new = ids(2)
    cands = {old: Candidate(old, NOW - timedelta(days=300), 0.5), new: Candidate(new, NOW, 0.5)}
    ranked = fuse(cands, {old: 1, new: 1}, {}, weights=Weights(), now=NOW, half_life=HALF_LIFE, k=2)
    assert [r.id for r in ranked] == [new, old]


def test_k_limits_and_order_is_deterministic() -> None:
    many = ids(20)
    ranks = {i: n for n, i in enumerate(many, start=1)}
    first = fuse(candidates(many), ranks, {}, weights=Weights(), now=NOW, half_life=HALF_LIFE, k=5)
    again = fuse(candidates(many), ranks, {}, weights=Weights(), now=NOW, half_life=HALF_LIFE, k=5)
    assert [r.id for r in first] == many[:5] == [r.id for r in again]


def test_all_zero_weights_are_refused() -> None:
    with pytest.raises(ValueError):
        fuse({}, {}, {}, weights=Weights(0, 0, 0, 0), now=NOW, half_life=HALF_LIFE, k=1)


def test_content_hash_ignores_spacing_only() -> None:
    assert content_hash("Bob  lives\nin Oslo ") == content_hash("Bob lives in Oslo")
    assert content_hash("Bob lives in Oslo") != content_hash("bob lives in oslo")


def test_working_memories_always_expire() -> None:
    assert expiry_for(Layer.WORKING, None, NOW) == NOW + timedelta(days=1)
    assert expiry_for(Layer.SEMANTIC, None, NOW) is None
    assert expiry_for(Layer.SEMANTIC, 60, NOW) == NOW + timedelta(seconds=60)
