"""How the ONNX backend groups a batch into sub-batches (pure logic, no model)."""

from __future__ import annotations

from rae_ml.adapters.onnx_embedder import SUB_BATCH, TOKENS_PER_RUN, _sub_batches


def lengths_of(chunks: list[list[int]], ids: list[list[int]]) -> list[list[int]]:
    return [[len(ids[i]) for i in chunk] for chunk in chunks]


def test_every_text_runs_once_with_texts_of_similar_length_together() -> None:
    ids = [[0] * n for n in (9, 3, 200, 3, 40, 7, 256, 12)]

    chunks = _sub_batches(ids, rows=3)

    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(ids)))
    assert lengths_of(chunks, ids) == [[3, 3, 7], [9, 12, 40], [200, 256]]


def test_a_sub_batch_holds_at_most_the_token_budget_of_padded_tokens() -> None:
    ids = [[0] * 256 for _ in range(20)] + [[0] * 10 for _ in range(100)]

    chunks = _sub_batches(ids, rows=32)

    assert all(len(chunk) <= 32 for chunk in chunks)
    assert all(len(chunk) * max(len(ids[i]) for i in chunk) <= TOKENS_PER_RUN for chunk in chunks)
    assert [len(chunk) for chunk in chunks] == [32, 32, 32, 8, 8, 8]


def test_a_text_longer_than_the_budget_still_runs_alone() -> None:
    ids = [[0] * (TOKENS_PER_RUN + 1), [0] * 5]

    assert _sub_batches(ids, rows=SUB_BATCH) == [[1], [0]]
