"""Clients of the memory and ml services' internal APIs, on behalf of a tenant."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from rae_common.auth import TENANT_HEADER
from rae_common.contracts.common import MAX_CONTENT_CHARS
from rae_common.errors import ProblemError

__all__ = ["Generated", "MemoryClient", "MlClient"]

_PAGE = 200  # the memory API's largest page
_ML_TIMEOUT = httpx.Timeout(120.0, connect=2.0)


async def _call(
    http: httpx.AsyncClient, service: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    try:
        return await http.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise ProblemError(
            503, f"The {service} service is unavailable.", slug=f"{service}-unavailable"
        ) from exc


def _failed(service: str, response: httpx.Response) -> ProblemError:
    return ProblemError(
        502, f"The {service} service answered {response.status_code}.", slug=f"{service}-failed"
    )


class MemoryClient:
    def __init__(self, http: httpx.AsyncClient, memory_url: str) -> None:
        self.http = http
        self.base = memory_url.rstrip("/") + "/v1/memories"

    async def recent(
        self, tenant_id: str, *, since: datetime | None, until: datetime, limit: int, layers: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The tenant's memories of `layers` created in [since, until), newest first, at most `limit`."""
        found: list[dict[str, Any]] = []
        async for page in self._pages(tenant_id, since, until, layers):
            found += page
            if len(found) >= limit:
                break
        return found[:limit]

    async def _pages(
        self, tenant_id: str, since: datetime | None, until: datetime, layers: Sequence[str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        params: dict[str, Any] = {"until": until.isoformat(), "limit": _PAGE, "layer": list(layers)}
        if since is not None:
            params["since"] = since.isoformat()
        while True:
            response = await _call(
                self.http, "memory", "GET", self.base, params=params, headers={TENANT_HEADER: tenant_id}
            )
            if response.status_code != 200:
                raise _failed("memory", response)
            body = response.json()
            yield body["items"]
            if not body["next_cursor"]:
                return
            params["cursor"] = body["next_cursor"]

    async def store(
        self, tenant_id: str, memory: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any] | None:
        """The stored memory (or the one already stored with this content); None when the key
        was used before with another body (an earlier attempt wrote other text)."""
        response = await _call(
            self.http,
            "memory",
            "POST",
            self.base,
            json=memory,
            headers={TENANT_HEADER: tenant_id, "Idempotency-Key": idempotency_key},
            timeout=_ML_TIMEOUT,  # the memory service embeds the content with ml
        )
        if response.status_code == 422 and response.json().get("type", "").endswith("idempotency-key-reused"):
            return None
        if response.status_code not in (200, 201):
            raise _failed("memory", response)
        stored: dict[str, Any] = response.json()
        return stored

    async def delete(self, tenant_id: str, memory_id: uuid.UUID) -> None:
        """Delete the memory; one already gone is no error (a redelivered event asks again)."""
        response = await _call(
            self.http, "memory", "DELETE", f"{self.base}/{memory_id}", headers={TENANT_HEADER: tenant_id}
        )
        if response.status_code not in (204, 404):
            raise _failed("memory", response)

    async def get_many(self, tenant_id: str, ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
        """The memories of `ids` that exist, in the order of `ids`."""

        async def one(memory_id: uuid.UUID) -> dict[str, Any] | None:
            response = await _call(
                self.http, "memory", "GET", f"{self.base}/{memory_id}", headers={TENANT_HEADER: tenant_id}
            )
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise _failed("memory", response)
            found: dict[str, Any] = response.json()
            return found

        return [m for m in await asyncio.gather(*(one(i) for i in ids)) if m is not None]


@dataclass(frozen=True, slots=True)
class Generated:
    content: str
    model: str


class MlClient:
    def __init__(self, http: httpx.AsyncClient, ml_url: str) -> None:
        self.http = http
        self.base = ml_url.rstrip("/") + "/v1/ml"

    async def embed(self, tenant_id: str, texts: Sequence[str]) -> list[list[float]]:
        response = await _call(
            self.http,
            "ml",
            "POST",
            f"{self.base}/embed",
            json={"texts": [t[:MAX_CONTENT_CHARS] for t in texts]},
            headers={TENANT_HEADER: tenant_id},
            timeout=_ML_TIMEOUT,
        )
        if response.status_code != 200:
            raise _failed("ml", response)
        vectors: list[list[float]] = response.json()["vectors"]
        return vectors

    async def generate(
        self, tenant_id: str, messages: list[dict[str, str]], *, model: str | None, max_tokens: int
    ) -> Generated:
        # Temperature 0: a redelivered request writes the same text, which the memory API's
        # Idempotency-Key replay needs.
        response = await _call(
            self.http,
            "ml",
            "POST",
            f"{self.base}/generate",
            json={"messages": messages, "model": model, "max_tokens": max_tokens, "temperature": 0},
            headers={TENANT_HEADER: tenant_id},
            timeout=_ML_TIMEOUT,
        )
        if response.status_code != 200:
            raise _failed("ml", response)
        body = response.json()
        return Generated(content=body["content"], model=body["model"])
