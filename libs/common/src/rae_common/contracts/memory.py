"""The memory API contract (memory service routes, exposed as-is by the gateway)."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from rae_common.contracts.common import MAX_CONTENT_CHARS

__all__ = [
    "BatchCreate",
    "CaseScore",
    "EvalCaseIn",
    "EvaluationOut",
    "EvaluationRequest",
    "BatchResult",
    "EraseResult",
    "HybridSearchRequest",
    "IngestResult",
    "IngestText",
    "Layer",
    "MemoryCreate",
    "MemoryListQuery",
    "MemoryOut",
    "MemoryPage",
    "MemoryPatch",
    "MetadataFilter",
    "ScoreParts",
    "SearchResponse",
    "SearchResult",
    "SearchWeights",
    "Tag",
    "metadata_filters",
]

MAX_BATCH = 1000

Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\s,][^,]*$")]


class Layer(StrEnum):
    WORKING = "working"
    EPISODIC = "episodic"
    SEMANTIC = "semantic"
    REFLECTIVE = "reflective"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class MemoryCreate(_Strict):
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS)
    layer: Layer = Layer.EPISODIC
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(default=None, max_length=500)
    subject: str | None = Field(
        default=None,
        max_length=200,
        description="Who or what the memory is about; `DELETE /v1/memories?subject=` erases all of it.",
    )
    importance: float = Field(default=0.5, ge=0, le=1)
    ttl_seconds: int | None = Field(
        default=None, ge=1, le=365 * 86400, description="Lifetime; `working` memories default to 1 day."
    )

    _content = field_validator("content")(_not_blank)


class MemoryPatch(_Strict):
    """The fields to change; a field left out keeps its value. `source`, `subject` and
    `expires_at` are cleared with null; the others always hold a value, so null is refused for
    them (422): clear `tags` with `[]` and `metadata` with `{}`."""

    # `SkipJsonSchema[None]`: None stands for "left out" here; the API does not take null.
    content: str | SkipJsonSchema[None] = Field(default=None, min_length=1, max_length=MAX_CONTENT_CHARS)
    layer: Layer | SkipJsonSchema[None] = None
    tags: list[Tag] | SkipJsonSchema[None] = Field(default=None, max_length=50)
    metadata: dict[str, Any] | SkipJsonSchema[None] = None
    source: str | None = Field(default=None, max_length=500)
    subject: str | None = Field(default=None, max_length=200)
    importance: float | SkipJsonSchema[None] = Field(default=None, ge=0, le=1)
    expires_at: datetime | None = None

    @field_validator("content", "layer", "tags", "metadata", "importance", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            cleared = {"tags": " (send [] to remove every tag)", "metadata": " (send {} to clear it)"}
            raise ValueError(f"{info.field_name} cannot be null{cleared.get(str(info.field_name), '')}")
        return value

    @field_validator("content")
    @classmethod
    def _content_not_blank(cls, value: str | None) -> str | None:
        return None if value is None else _not_blank(value)


class MemoryOut(BaseModel):
    id: uuid.UUID
    tenant_id: str
    content: str
    layer: Layer
    tags: list[str]
    metadata: dict[str, Any]
    source: str | None
    subject: str | None
    importance: float
    content_hash: str
    embedding_model: str | None
    document_id: uuid.UUID | None
    chunk_index: int | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None


class MemoryPage(BaseModel):
    items: list[MemoryOut]
    next_cursor: str | None


def _metadata_value(raw: str) -> str | int | float | bool | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or Infinity, so no stored metadata value equals one.
        raise ValueError(f"{raw!r} is not a value metadata can hold: numbers must be finite")
    return value if isinstance(value, str | int | float | bool) or value is None else raw


def _metadata_pair(pair: str) -> str:
    key, _, raw = pair.partition("=")
    if not key:
        raise ValueError("a metadata filter looks like key=value")
    _metadata_value(raw)
    return pair


MetadataFilter = Annotated[
    str,
    Field(
        pattern=r"^[^=]+=",
        max_length=1000,
        description="`key=value`; a JSON number, true, false or null matches as that.",
    ),
    AfterValidator(_metadata_pair),
]


def metadata_filters(pairs: list[str]) -> dict[str, str | int | float | bool | None]:
    """`key=value` filters (already validated as `MetadataFilter`) as the values they match."""
    parsed: dict[str, str | int | float | bool | None] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        parsed[key] = _metadata_value(raw)
    return parsed


class MemoryListQuery(BaseModel):
    """Filters of `GET /v1/memories`."""

    layer: list[Layer] = Field(default_factory=list, description="Repeat to allow several.")
    tags: list[Tag] = Field(default_factory=list, max_length=20, description="Repeat to require several.")
    since: datetime | None = None
    until: datetime | None = None
    metadata: list[MetadataFilter] = Field(
        default_factory=list, max_length=20, description="Repeatable `key=value` equality filters."
    )
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=200, description="Page size.")


class BatchCreate(_Strict):
    items: list[MemoryCreate] = Field(min_length=1, max_length=MAX_BATCH)


class BatchResult(BaseModel):
    items: list[MemoryOut]
    created: int
    duplicates: int


class SearchWeights(_Strict):
    """Weights of the score's parts. Meaning leads by default: reciprocal ranks of two retrievers
    that disagree symmetrically would tie, and semantic similarity answers questions better."""

    vector: float = Field(default=1.0, ge=0, le=10)
    lexical: float = Field(default=0.5, ge=0, le=10)
    recency: float = Field(default=0.1, ge=0, le=10)
    importance: float = Field(default=0.1, ge=0, le=10)

    @model_validator(mode="after")
    def _some_weight(self) -> SearchWeights:
        # The score is the weighted mean of the parts: with nothing weighted it has no value.
        if not (self.vector or self.lexical or self.recency or self.importance):
            raise ValueError("at least one weight must be above 0")
        return self


class HybridSearchRequest(_Strict):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(default=10, ge=1, le=100)
    layers: list[Layer] | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20)
    metadata: dict[str, str | int | float | bool] | None = None
    since: datetime | None = None
    until: datetime | None = None
    weights: SearchWeights | None = None

    _query = field_validator("query")(_not_blank)


class ScoreParts(BaseModel):
    vector: float
    lexical: float
    recency: float
    importance: float


class SearchResult(BaseModel):
    id: uuid.UUID
    content: str
    layer: Layer
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    score: float
    scores: ScoreParts


class SearchResponse(BaseModel):
    results: list[SearchResult]


class IngestText(_Strict):
    text: str = Field(min_length=1)
    filename: str = Field(min_length=1, max_length=300)
    layer: Layer = Layer.SEMANTIC
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    metadata: dict[str, Any] = Field(default_factory=dict)
    subject: str | None = Field(default=None, max_length=200)


class IngestResult(BaseModel):
    document_id: uuid.UUID
    filename: str
    kind: str
    chunk_count: int
    memory_ids: list[uuid.UUID]


class EraseResult(BaseModel):
    """What an erasure removed. Counts of the downstream services are what they removed while
    the request ran; a service named in `pending` did not answer, and finishes from the
    `memory.deleted` events the erasure emitted."""

    subject: str
    deleted: int = Field(description="Memories erased (the same as `memories`).")
    memories: int = Field(
        default=0,
        description="Memories erased: the subject's, its documents' chunks, and the reflective "
        "memories written from them.",
    )
    documents: int = 0
    reflections: int = Field(default=0, description="Reflections removed because they cite an erased memory.")
    graph_entities: int = 0
    graph_edges: int = 0
    cache_entries: int = Field(default=0, description="Cached embeddings of the erased texts evicted.")
    pending: list[str] = Field(default_factory=list, description="Services that did not answer in time.")
    erasure_id: uuid.UUID | None = Field(default=None, description="The erasure's audit record.")


# --- evaluations of hybrid search --------------------------------------------------------

MAX_EVAL_CASES = 100


class EvalCaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    relevant_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=100, description="The memories a perfect search would return."
    )


class EvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: list[EvalCaseIn] = Field(min_length=1, max_length=MAX_EVAL_CASES)
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
