"""Clients of the ml service (extraction, embeddings) and the memory service (content, search)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from rae_common.auth import TENANT_HEADER
from rae_common.contracts.memory import MemoryOut, SearchResult
from rae_common.contracts.ml import ExtractResponse
from rae_common.errors import ProblemError

__all__ = ["MemoryClient", "MlClient"]

_SLOW = httpx.Timeout(120.0, connect=2.0)


def _unavailable(service: str) -> ProblemError:
    return ProblemError(503, f"The {service} service is unavailable.", slug=f"{service}-unavailable")


def _failed(service: str, response: httpx.Response) -> ProblemError:
    return ProblemError(
        502, f"The {service} service answered {response.status_code}.", slug=f"{service}-failed"
    )


class MlClient:
    def __init__(self, http: httpx.AsyncClient, ml_url: str, *, extract_model: str | None) -> None:
        self.http = http
        self.base = ml_url.rstrip("/")
        self.extract_model = extract_model

    async def _post(self, tenant_id: str, path: str, body: dict[str, Any]) -> Any:
        try:
            response = await self.http.post(
                self.base + path, json=body, headers={TENANT_HEADER: tenant_id}, timeout=_SLOW
            )
        except httpx.TransportError as exc:
            raise _unavailable("ml") from exc
        if response.status_code != 200:
            raise _failed("ml", response)
        return response.json()

    async def extract(self, tenant_id: str, text: str) -> ExtractResponse:
        body = await self._post(tenant_id, "/v1/ml/extract", {"text": text, "model": self.extract_model})
        return ExtractResponse.model_validate(body)

    async def judge(
        self, tenant_id: str, model: str, messages: list[dict[str, str]], schema: dict[str, Any]
    ) -> Any:
        """A JSON-schema-constrained answer of `model` (the parsed `output`)."""
        body = await self._post(
            tenant_id,
            "/v1/ml/generate",
            {"messages": messages, "model": model, "json_schema": schema, "max_tokens": 20, "temperature": 0},
        )
        return body.get("output")

    async def embed(self, tenant_id: str, texts: Sequence[str]) -> list[list[float]]:
        body = await self._post(tenant_id, "/v1/ml/embed", {"texts": list(texts)})
        vectors: list[list[float]] = body["vectors"]
        return vectors


class MemoryClient:
    def __init__(self, http: httpx.AsyncClient, memory_url: str) -> None:
        self.http = http
        self.base = memory_url.rstrip("/")

    async def get(self, tenant_id: str, memory_id: uuid.UUID | str) -> MemoryOut | None:
        """The memory, or None when it does not exist (any more)."""
        try:
            response = await self.http.get(
                f"{self.base}/v1/memories/{memory_id}", headers={TENANT_HEADER: tenant_id}
            )
        except httpx.TransportError as exc:
            raise _unavailable("memory") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _failed("memory", response)
        return MemoryOut.model_validate(response.json())

    async def hybrid_search(self, tenant_id: str, query: str, k: int) -> list[SearchResult]:
        try:
            response = await self.http.post(
                f"{self.base}/v1/search/hybrid",
                json={"query": query, "k": k},
                headers={TENANT_HEADER: tenant_id},
                timeout=_SLOW,
            )
        except httpx.TransportError as exc:
            raise _unavailable("memory") from exc
        if response.status_code != 200:
            raise _failed("memory", response)
        return [SearchResult.model_validate(item) for item in response.json()["results"]]
