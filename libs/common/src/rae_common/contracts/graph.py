"""The graph API contract (graph service routes, exposed as-is by the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rae_common.contracts.ml import MAX_EXTRACT_CHARS, Entity, Relation

__all__ = [
    "MAX_DEPTH",
    "EdgeOut",
    "EdgePage",
    "ExtractResult",
    "GraphExtractRequest",
    "GraphSearchRequest",
    "GraphSearchResponse",
    "GraphSearchResult",
    "NodeOut",
    "NodePage",
    "PathOut",
    "PathStep",
    "StatsOut",
    "StoredCounts",
    "SubgraphOut",
]

# Deeper traversals return most of a tenant's graph and cost accordingly.
MAX_DEPTH = 3


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeOut(BaseModel):
    id: uuid.UUID
    name: str
    type: str
    aliases: list[str]
    memory_ids: list[uuid.UUID] = Field(description="Memories that mention the entity.")
    created_at: str
    updated_at: str


class EdgeOut(BaseModel):
    """A relation; `valid_*` say when it held in the world, `created_at`/`expired_at` when the graph
    believed it (an edge closed by a contradicting fact keeps its history)."""

    id: uuid.UUID
    source_id: uuid.UUID
    source: str = Field(description="Name of the source entity.")
    relation: str
    target_id: uuid.UUID
    target: str = Field(description="Name of the target entity.")
    confidence: float
    valid_from: str
    valid_to: str | None
    created_at: str
    expired_at: str | None
    memory_ids: list[uuid.UUID] = Field(description="Memories the relation was extracted from.")


class NodePage(BaseModel):
    items: list[NodeOut]
    next_cursor: str | None


class EdgePage(BaseModel):
    items: list[EdgeOut]
    next_cursor: str | None


class SubgraphOut(BaseModel):
    nodes: list[NodeOut]
    edges: list[EdgeOut]
    truncated: bool = Field(description="True when the size cap cut the neighbourhood short.")


class PathOut(BaseModel):
    found: bool
    nodes: list[NodeOut] = Field(description="From `from` to `to`, in order; empty when not found.")
    edges: list[EdgeOut]


class StatsOut(BaseModel):
    nodes: int
    edges: int
    current_edges: int = Field(description="Edges still valid (not closed).")
    nodes_by_type: dict[str, int]
    edges_by_relation: dict[str, int]


ExtractText = Annotated[str, Field(min_length=1, max_length=MAX_EXTRACT_CHARS), AfterValidator(_not_blank)]


class GraphExtractRequest(_Strict):
    text: ExtractText
    store: bool = Field(default=False, description="Also write the entities and relations to the graph.")
    memory_id: uuid.UUID | None = Field(
        default=None, description="Provenance of stored relations: deleting this memory prunes them."
    )


class StoredCounts(BaseModel):
    nodes_created: int
    nodes_merged: int
    edges_created: int
    edges_closed: int


class ExtractResult(BaseModel):
    entities: list[Entity]
    relations: list[Relation]
    stored: StoredCounts | None = Field(description="What the graph changed; null unless `store`.")
    notice: str | None = Field(default=None, description="Set when the offline extractor answered.")


class GraphSearchRequest(_Strict):
    query: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_not_blank)]
    k: int = Field(default=10, ge=1, le=50)
    depth: int = Field(default=2, ge=1, le=MAX_DEPTH, description="Hops expanded from the linked entities.")


class PathStep(BaseModel):
    source: str
    relation: str
    target: str
    edge_id: uuid.UUID


class GraphSearchResult(BaseModel):
    id: uuid.UUID = Field(description="The memory's id.")
    content: str
    score: float = Field(description="Reciprocal-rank fusion of the graph and hybrid rankings.")
    graph_rank: int | None = Field(description="1-based rank among memories the graph reached.")
    hybrid_rank: int | None = Field(description="1-based rank in the memory service's hybrid search.")
    path: list[PathStep] = Field(
        description="Edges from a linked entity to the edge this memory supports; empty when only "
        "hybrid search found it."
    )


class GraphSearchResponse(BaseModel):
    results: list[GraphSearchResult]
    entities: list[NodeOut] = Field(description="Entities of the graph the query was linked to.")
