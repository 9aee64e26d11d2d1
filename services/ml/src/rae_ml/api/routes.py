"""ml routes (thin: validate, call the embedding service, map errors to problems)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rae_common.app import StateDep
from rae_common.auth import TenantDep
from rae_common.errors import ProblemError
from rae_ml.domain.embeddings import UnknownModel
from rae_ml.service import EmbeddingService, ModelUnavailable

router = APIRouter(prefix="/v1/ml", tags=["ml"])

MAX_TEXTS = 2048
MAX_TEXT_CHARS = 20_000


def get_embeddings(state: StateDep) -> EmbeddingService:
    service: EmbeddingService = state.get("embeddings")
    return service


EmbeddingsDep = Annotated[EmbeddingService, Depends(get_embeddings)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank)]


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS)
    model: str | None = Field(default=None, max_length=200, description="Default model when null.")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    model: str
    provider: str
    estimated: bool


class EmbedResponse(BaseModel):
    model: str
    dimensions: int
    vectors: list[list[float]]
    cached: int = Field(description="How many vectors came from the cache.")
    usage: Usage


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
