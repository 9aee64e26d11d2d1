"""Retrieval evaluation: rank metrics (pure) and the run that scores the current hybrid search.

Relevance is binary: a result is relevant when its id is one of the case's `relevant_ids`.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from rae_common.contracts.memory import HybridSearchRequest, SearchWeights
from rae_common.db import tenant_tx
from rae_common.errors import ProblemError
from rae_common.events import EvalCompleted, new_envelope
from rae_common.outbox import add_to_outbox
from rae_memory.adapters.sql import SCHEMA
from rae_memory.service import MemoryService

__all__ = ["Case", "get_evaluation", "ndcg_at_k", "recall_at_k", "reciprocal_rank", "run_evaluation"]

_CONCURRENT_SEARCHES = 4
_COLUMNS = "id, tenant_id, k, weights, recall_at_k, mrr, ndcg_at_k, case_count, cases, created_at"


def recall_at_k(ranked: Sequence[uuid.UUID], relevant: Collection[uuid.UUID], k: int) -> float:
    """Share of the relevant items found in the first `k` results."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(set(relevant))


def reciprocal_rank(ranked: Sequence[uuid.UUID], relevant: Collection[uuid.UUID], k: int) -> float:
    """1 / rank of the first relevant result within the first `k`; 0 when none is there."""
    for rank, item in enumerate(ranked[:k], start=1):
        if item in relevant:
            return 1 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[uuid.UUID], relevant: Collection[uuid.UUID], k: int) -> float:
    """Discounted cumulative gain of the first `k` results over that of a perfect ranking."""
    wanted = set(relevant)
    gain = sum(1 / math.log2(rank + 1) for rank, item in enumerate(ranked[:k], start=1) if item in wanted)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
    return gain / ideal if ideal else 0.0


@dataclass(frozen=True, slots=True)
class Case:
    query: str
    relevant_ids: list[uuid.UUID]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


async def run_evaluation(
    service: MemoryService,
    tenant_id: str,
    cases: Sequence[Case],
    k: int,
    weights: SearchWeights | None = None,
) -> dict[str, Any]:
    """Search each case's query as `POST /v1/search/hybrid` would, score the rankings, store the
    run and announce `eval.completed` in one transaction."""
    gate = asyncio.Semaphore(_CONCURRENT_SEARCHES)

    async def ranked(case: Case) -> list[uuid.UUID]:
        async with gate:
            results = await service.search(
                tenant_id, HybridSearchRequest(query=case.query, k=k, weights=weights)
            )
        return [uuid.UUID(r["id"]) for r in results]

    rankings = await asyncio.gather(*(ranked(c) for c in cases))
    scored: list[dict[str, Any]] = [
        {
            "query": case.query,
            "relevant_ids": [str(i) for i in case.relevant_ids],
            "retrieved_ids": [str(i) for i in ids],
            "recall_at_k": recall_at_k(ids, case.relevant_ids, k),
            "reciprocal_rank": reciprocal_rank(ids, case.relevant_ids, k),
            "ndcg_at_k": ndcg_at_k(ids, case.relevant_ids, k),
        }
        for case, ids in zip(cases, rankings, strict=True)
    ]
    evaluation_id = uuid.uuid4()
    summary = EvalCompleted(
        evaluation_id=evaluation_id,
        k=k,
        recall_at_k=_mean([c["recall_at_k"] for c in scored]),
        mrr=_mean([c["reciprocal_rank"] for c in scored]),
        ndcg_at_k=_mean([c["ndcg_at_k"] for c in scored]),
        cases=len(scored),
    )
    async with tenant_tx(service.pool, tenant_id) as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO {SCHEMA}.evaluations
                    (id, tenant_id, k, weights, recall_at_k, mrr, ndcg_at_k, case_count, cases)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                RETURNING {_COLUMNS}""",
            evaluation_id,
            tenant_id,
            k,
            weights.model_dump() if weights else None,
            summary.recall_at_k,
            summary.mrr,
            summary.ndcg_at_k,
            summary.cases,
            scored,
        )
        await add_to_outbox(
            conn,
            SCHEMA,
            new_envelope(
                "eval.completed",
                summary,
                tenant_id=tenant_id,
                producer="memory",
                idempotency_key=f"eval.completed:{evaluation_id}",
            ),
        )
    service.wake_relay()
    return dict(row)


async def get_evaluation(service: MemoryService, tenant_id: str, evaluation_id: uuid.UUID) -> dict[str, Any]:
    async with tenant_tx(service.pool, tenant_id) as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM {SCHEMA}.evaluations WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            evaluation_id,
        )
    if row is None:
        raise ProblemError(404, f"Evaluation {evaluation_id} was not found.", slug="evaluation-not-found")
    return dict(row)
