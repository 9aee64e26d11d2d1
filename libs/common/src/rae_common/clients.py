"""Typed clients of the services' internal erasure APIs (`rae_common.contracts.erasure`), used by
the memory service when it erases a subject. Each call names the tenant in `X-Tenant-ID`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeVar

import httpx
from pydantic import BaseModel

from rae_common.auth import TENANT_HEADER
from rae_common.contracts.erasure import (
    MAX_FORGET_IDS,
    EmbeddingsEvicted,
    EvictEmbeddings,
    ForgetMemories,
    GraphForgotten,
    ReflectionsForgotten,
)
from rae_common.contracts.ml import MAX_TEXTS

__all__ = ["GraphClient", "MlClient", "ReflectionClient", "ServiceCallFailed"]

Answer = TypeVar("Answer", bound=BaseModel)

# Forgetting a thousand memories in the graph is a few thousand small queries: seconds, not minutes.
_TIMEOUT = httpx.Timeout(60.0, connect=2.0)


class ServiceCallFailed(Exception):
    """The service was unreachable, timed out, or did not answer 200."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"the {service} service: {reason}")
        self.service = service


async def _post(
    http: httpx.AsyncClient, service: str, url: str, tenant_id: str, body: BaseModel, answer: type[Answer]
) -> Answer:
    try:
        response = await http.post(
            url,
            content=body.model_dump_json(),
            headers={TENANT_HEADER: tenant_id, "content-type": "application/json"},
            timeout=_TIMEOUT,
        )
    except httpx.TransportError as exc:
        raise ServiceCallFailed(service, f"{type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise ServiceCallFailed(service, f"answered {response.status_code}")
    return answer.model_validate_json(response.content)


class ReflectionClient:
    def __init__(self, http: httpx.AsyncClient, reflection_url: str) -> None:
        self.http = http
        self.url = reflection_url.rstrip("/") + "/v1/reflections/forget"

    async def forget(self, tenant_id: str, memory_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Remove the reflections citing (or being) these memories; the ids of those removed."""
        removed: list[uuid.UUID] = []
        for n in range(0, len(memory_ids), MAX_FORGET_IDS):
            body = ForgetMemories(memory_ids=list(memory_ids[n : n + MAX_FORGET_IDS]))
            answer = await _post(self.http, "reflection", self.url, tenant_id, body, ReflectionsForgotten)
            removed += answer.reflection_ids
        return removed


class GraphClient:
    def __init__(self, http: httpx.AsyncClient, graph_url: str) -> None:
        self.http = http
        self.url = graph_url.rstrip("/") + "/v1/graph/forget"

    async def forget(self, tenant_id: str, memory_ids: Sequence[uuid.UUID]) -> GraphForgotten:
        """Drop these memories from every provenance list; prune what is left with none."""
        edges = nodes = 0
        for n in range(0, len(memory_ids), MAX_FORGET_IDS):
            body = ForgetMemories(memory_ids=list(memory_ids[n : n + MAX_FORGET_IDS]))
            answer = await _post(self.http, "graph", self.url, tenant_id, body, GraphForgotten)
            edges, nodes = edges + answer.edges_pruned, nodes + answer.nodes_pruned
        return GraphForgotten(edges_pruned=edges, nodes_pruned=nodes)


class MlClient:
    def __init__(self, http: httpx.AsyncClient, ml_url: str) -> None:
        self.http = http
        self.url = ml_url.rstrip("/") + "/v1/ml/embed/evict"

    async def evict_embeddings(self, tenant_id: str, digests: Sequence[str]) -> int:
        """Evict the cached embeddings (every model's) of the texts of these digests
        (`text_digest`); how many there were."""
        evicted = 0
        for n in range(0, len(digests), MAX_TEXTS):
            body = EvictEmbeddings(digests=list(digests[n : n + MAX_TEXTS]))
            answer = await _post(self.http, "ml", self.url, tenant_id, body, EmbeddingsEvicted)
            evicted += answer.evicted
        return evicted
