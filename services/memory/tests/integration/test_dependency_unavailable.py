"""When a dependency cannot serve, memory answers 503 problem+json saying when to retry
(issue #16: its 503 for ml down had no Retry-After; a full pool made requests wait for ever)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from rae_common.testing import serve_app
from rae_memory.main import MemorySettings, create_app


def closed_port_url() -> str:
    """A URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def tenant() -> dict[str, str]:
    return {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}


async def test_ml_down_is_a_503_with_retry_after(
    memory_settings: MemorySettings, tenant: dict[str, str]
) -> None:
    settings = memory_settings.model_copy(update={"ml_url": closed_port_url()})
    async with serve_app(create_app(settings)) as client:
        response = await client.post("/v1/search/hybrid", json={"query": "anything", "k": 3}, headers=tenant)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/embeddings-unavailable")
    assert int(response.headers["retry-after"]) > 0


@pytest.fixture
async def one_connection_client(memory_settings: MemorySettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = memory_settings.model_copy(
        update={"database_pool_min": 1, "database_pool_max": 1, "database_acquire_timeout_s": 0.5}
    )
    app = create_app(settings)
    async with serve_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def test_a_pool_with_no_free_connection_answers_503_with_retry_after(
    one_connection_client: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    pool = one_connection_client.app.state.rae.resources["db"]  # type: ignore[attr-defined]
    async with pool.acquire():  # the only connection, held elsewhere
        response = await one_connection_client.get("/v1/memories", headers=tenant)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["type"].endswith("/dependency-unavailable") and body["dependency"] == "postgres"
    assert response.headers["retry-after"] == "1"
    assert (await one_connection_client.get("/v1/memories", headers=tenant)).status_code == 200
