"""Retrieval evaluation routes: score the current hybrid search against labelled queries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from rae_common.auth import TenantDep
from rae_common.contracts.memory import SearchWeights
from rae_memory.api.routes import ServiceDep
from rae_memory.evaluation import Case, get_evaluation, run_evaluation

router = APIRouter(tags=["evaluations"])

MAX_CASES = 100


class EvalCaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    relevant_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=100, description="The memories a perfect search would return."
    )


class EvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: list[EvalCaseIn] = Field(min_length=1, max_length=MAX_CASES)
    k: int = Field(default=10, ge=1, le=100, description="Results scored per query.")
    weights: SearchWeights | None = Field(default=None, description="Search weights to evaluate.")


class CaseScore(BaseModel):
    query: str
    relevant_ids: list[uuid.UUID]
    retrieved_ids: list[uuid.UUID] = Field(description="The first k results, best first.")
    recall_at_k: float
    reciprocal_rank: float = Field(description="1 / rank of the first relevant result in the first k.")
    ndcg_at_k: float


class EvaluationOut(BaseModel):
    id: uuid.UUID
    tenant_id: str
    k: int
    weights: SearchWeights | None
    recall_at_k: float = Field(description="Mean over the cases.")
    mrr: float = Field(description="Mean reciprocal rank over the cases.")
    ndcg_at_k: float = Field(description="Mean over the cases.")
    case_count: int
    cases: list[CaseScore]
    created_at: datetime


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
