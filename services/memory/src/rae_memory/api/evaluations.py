"""Retrieval evaluation routes: score the current hybrid search against labelled queries."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from rae_common.auth import TenantDep
from rae_common.contracts.memory import EvaluationOut, EvaluationRequest
from rae_memory.api.routes import ServiceDep
from rae_memory.evaluation import Case, get_evaluation, run_evaluation

router = APIRouter(tags=["evaluations"])


@router.post(
    "/v1/evaluations",
    status_code=201,
    response_model=EvaluationOut,
    summary="Evaluate hybrid search: recall@k, MRR and nDCG@k over labelled queries.",
)
async def create_evaluation(
    body: EvaluationRequest, tenant_id: TenantDep, service: ServiceDep
) -> dict[str, Any]:
    """Run the queries through the current hybrid search, score, store and announce the run."""
    cases = [Case(c.query, c.relevant_ids) for c in body.cases]
    return await run_evaluation(service, tenant_id, cases, body.k, body.weights)


@router.get(
    "/v1/evaluations/{evaluation_id}", response_model=EvaluationOut, summary="Read an evaluation run."
)
async def read_evaluation(
    evaluation_id: uuid.UUID, tenant_id: TenantDep, service: ServiceDep
) -> dict[str, Any]:
    """One stored evaluation run with its per-case scores."""
    return await get_evaluation(service, tenant_id, evaluation_id)
