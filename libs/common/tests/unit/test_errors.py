"""Every error a service answers is problem+json, without stack traces."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Request
from pydantic import BaseModel

from rae_common.app import create_service_app
from rae_common.db import PoolTimeout
from rae_common.errors import ProblemError
from rae_common.settings import ServiceSettings
from rae_common.testing import serve_app, serve_in_thread

router = APIRouter()


class Item(BaseModel):
    name: str
    count: int


@router.post("/items")
async def create_item(item: Item) -> dict[str, str]:
    return {"name": item.name}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internal detail /etc/passwd")


@router.get("/unavailable")
async def unavailable() -> None:
    raise ProblemError(503, "The ml service is unavailable.", slug="embeddings-unavailable")


@router.get("/pool-exhausted")
async def pool_exhausted() -> None:
    raise PoolTimeout(5.0)


@router.get("/peer")
async def peer(request: Request) -> dict[str, int]:
    """The client's port as the server sees it: the same port means the same connection."""
    assert request.client is not None
    return {"port": request.client.port}


@router.get("/conflict")
async def conflict() -> None:
    raise ProblemError(409, "already there", slug="thing-exists", extensions={"thing": "x"})


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = ServiceSettings(service_name="errtest", max_body_bytes=1024)
    app = create_service_app(settings, title="t", description="d", routers=[router])
    async with serve_app(app) as c:
        yield c


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    assert body["title"]
    return body


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nope"), 404, "not-found")


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.delete("/items"), 405, "method-not-allowed")
    assert body["instance"] == "/items"


async def test_invalid_body_is_422_with_locations_but_not_input(client: httpx.AsyncClient) -> None:
    body = assert_problem(
        await client.post("/items", json={"name": "n", "count": "not-a-number-SECRET"}),
        422,
        "validation-error",
    )
    assert body["errors"][0]["loc"] == ["body", "count"]
    assert "SECRET" not in str(body)


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(response, 422, "validation-error")


async def test_unhandled_error_is_500_without_trace(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    body = assert_problem(response, 500, "internal-error")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in body.get("detail", "")


def test_an_unhandled_error_keeps_the_clients_connection_open() -> None:
    settings = ServiceSettings(service_name="errtest")
    app = create_service_app(settings, title="t", description="d", routers=[router])
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        before = client.get("/peer").json()["port"]
        assert_problem(client.get("/boom"), 500, "internal-error")
        assert client.get("/peer").json()["port"] == before


async def test_every_503_says_when_to_retry(client: httpx.AsyncClient) -> None:
    response = await client.get("/unavailable")
    assert_problem(response, 503, "embeddings-unavailable")
    assert int(response.headers["retry-after"]) > 0


async def test_an_exhausted_pool_is_a_503_naming_the_dependency(client: httpx.AsyncClient) -> None:
    response = await client.get("/pool-exhausted")
    body = assert_problem(response, 503, "dependency-unavailable")
    assert body["dependency"] == "postgres"
    assert response.headers["retry-after"] == "1"


async def test_problem_error_carries_slug_and_extensions(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/conflict"), 409, "thing-exists")
    assert body["detail"] == "already there"
    assert body["thing"] == "x"


async def test_body_over_limit_by_content_length_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", content=b"x" * 2048, headers={"content-type": "application/json"})
    assert_problem(response, 413, "payload-too-large")


async def test_streamed_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 512

    response = await client.post("/items", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(response, 413, "payload-too-large")


async def test_body_under_limit_passes(client: httpx.AsyncClient) -> None:
    assert (await client.post("/items", json={"name": "a", "count": 1})).json() == {"name": "a"}
