"""Sums of rolled-up usage: per key, drained once, restored after a failed write."""

from __future__ import annotations

from rae_ml.domain.rollup import RollupKey, Tally, UsageRollup

A = RollupKey("t-a", "embed", "local", "mini", estimated=False)
B = RollupKey("t-b", "embed", "local", "mini", estimated=False)
A_ESTIMATED = RollupKey("t-a", "embed", "local", "mini", estimated=True)


def test_calls_are_summed_per_tenant_model_and_estimate() -> None:
    rollup = UsageRollup()
    rollup.add(A, 10, 0, 0.001)
    rollup.add(A, 5, 1, 0.002)
    rollup.add(B, 7, 0, 0.0)
    rollup.add(A_ESTIMATED, 3, 0, 0.0)
    assert rollup.calls == 4 and len(rollup) == 3

    drained = rollup.drain()
    assert drained[A].calls == 2
    assert (drained[A].prompt_tokens, drained[A].completion_tokens) == (15, 1)
    assert abs(drained[A].cost_usd - 0.003) < 1e-12
    assert drained[B] == Tally(1, 7, 0, 0.0)
    assert drained[A_ESTIMATED] == Tally(1, 3, 0, 0.0)
    assert rollup.drain() == {} and rollup.calls == 0


def test_a_failed_write_is_restored_beside_newer_calls() -> None:
    rollup = UsageRollup()
    rollup.add(A, 10, 0, 0.0)
    drained = rollup.drain()
    rollup.add(A, 4, 0, 0.0)  # arrives while the write is failing
    rollup.add(B, 1, 0, 0.0)
    rollup.restore(drained)
    again = rollup.drain()
    assert again[A] == Tally(2, 14, 0, 0.0)
    assert again[B] == Tally(1, 1, 0, 0.0)
