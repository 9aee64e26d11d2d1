"""ml routes (thin: validate, call the embedding service, map errors to problems)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_common.contracts.ml import EmbedRequest, EmbedResponse
from rae_common.errors import ProblemError
from rae_ml.domain.embeddings import UnknownModel
from rae_ml.service import EmbeddingService, ModelUnavailable

router = APIRouter(prefix="/v1/ml", tags=["ml"])


def get_embeddings(state: StateDep) -> EmbeddingService:
    service: EmbeddingService = state.get("embeddings")
    return service


EmbeddingsDep = Annotated[EmbeddingService, Depends(get_embeddings)]


class ModelOut(BaseModel):
    name: str
    dimensions: int
    provider: str
    max_tokens: int


class ModelList(BaseModel):
    items: list[ModelOut]
    default: str


@router.post(
    "/embed",
    response_model=EmbedResponse,
    summary="Embed texts as L2-normalised vectors, in order (cached by content).",
    responses={503: {"description": "The model could not be loaded."}},
)
async def embed(body: EmbedRequest, _tenant_id: TenantDep, embeddings: EmbeddingsDep) -> dict[str, Any]:
    try:
        result = await embeddings.embed(body.texts, body.model)
    except UnknownModel as exc:
        raise ProblemError(422, str(exc), slug="unknown-model", extensions={"known": exc.known}) from exc
    except ModelUnavailable as exc:
        raise ProblemError(503, str(exc), slug="model-unavailable") from exc
    info = result.model
    return {
        "model": info.name,
        "dimensions": info.dimensions,
        "vectors": result.vectors,
        "cached": result.cached,
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": 0,
            "total_tokens": result.prompt_tokens,
            "cost_usd": info.cost_usd(result.prompt_tokens),
            "model": info.name,
            "provider": info.provider,
            "estimated": False,
        },
    }


@router.get("/models", response_model=ModelList, summary="The embedding models this service offers.")
async def list_models(embeddings: EmbeddingsDep) -> dict[str, Any]:
    registry = embeddings.registry
    return {
        "items": [
            {"name": i.name, "dimensions": i.dimensions, "provider": i.provider, "max_tokens": i.max_tokens}
            for i in registry.infos
        ],
        "default": registry.default,
    }
