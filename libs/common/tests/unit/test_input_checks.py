"""Every service refuses what its storage cannot hold or its routes cannot read, with a 4xx
problem naming the input: NUL characters, non-finite numbers and lone surrogates in JSON, control
characters in path segments, and bodies of a route that reads JSON sent as something else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from rae_common.app import create_service_app
from rae_common.settings import ServiceSettings
from rae_common.testing import error_locs, problem, serve_app

router = APIRouter()


class Note(BaseModel):
    text: str
    tags: list[str] = []
    metadata: dict[str, Any] = {}


@router.post("/notes")
async def create_note(note: Note) -> dict[str, Any]:
    return note.model_dump()


@router.get("/notes")
async def find_notes(q: str = "", tag: list[str] | None = None) -> dict[str, Any]:
    return {"q": q, "tag": tag}


@router.get("/notes/{name}")
async def get_note(name: str) -> dict[str, str]:
    return {"name": name}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(
        ServiceSettings(service_name="inputtest"), title="t", description="d", routers=[router]
    )
    async with serve_app(app) as c:
        yield c


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (b'{"text": "a\\u0000b"}', ["body", "text"]),
        (b'{"text": "ok", "tags": ["x", "y\\u0000"]}', ["body", "tags", "1"]),
        (b'{"text": "ok", "metadata": {"k\\u0000": 1}}', ["body", "metadata", "k\x00", "[key]"]),
        (b'{"text": "ok", "metadata": {"deep": [{"v": "\\u0000"}]}}', ["body", "metadata", "deep", "0", "v"]),
    ],
)
async def test_nul_anywhere_in_a_json_body_is_a_422_naming_the_field(
    client: httpx.AsyncClient, raw: bytes, loc: list[str]
) -> None:
    body = problem(
        await client.post("/notes", content=raw, headers={"content-type": "application/json"}), 422
    )
    assert body["type"] == "https://rae.dev/problems/validation-error"
    assert error_locs(body) == [loc]
    assert body["errors"][0]["type"] == "string_nul_character"


async def test_an_escaped_backslash_before_u0000_is_plain_text(client: httpx.AsyncClient) -> None:
    response = await client.post("/notes", json={"text": "C:\\u0000 is a path, not a NUL"})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "C:\\u0000 is a path, not a NUL"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'{"text": "ok", "metadata": {"n": NaN}}', "finite_number"),
        (b'{"text": "ok", "metadata": {"n": -Infinity}}', "finite_number"),
        (b'{"text": "a\\ud800b"}', "string_unicode"),
    ],
)
async def test_what_json_cannot_carry_to_storage_is_a_422(
    client: httpx.AsyncClient, raw: bytes, kind: str
) -> None:
    body = problem(
        await client.post("/notes", content=raw, headers={"content-type": "application/json"}), 422
    )
    assert body["errors"][0]["type"] == kind


async def test_nul_in_a_query_parameter_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    body = problem(await client.get("/notes", params={"q": "fine", "tag": ["a", "b\x00"]}), 422)
    assert error_locs(body) == [["query", "tag"]]
    assert (await client.get("/notes", params={"q": "fine", "tag": ["a", "b"]})).status_code == 200


@pytest.mark.parametrize("segment", ["name%0A", "na%0Dme", "name%00", "%09name", "name%7F"])
async def test_a_control_character_in_a_path_segment_is_a_422(
    client: httpx.AsyncClient, segment: str
) -> None:
    body = problem(await client.get(f"/notes/{segment}"), 422)
    assert error_locs(body) == [["path", "name"]]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_json_route_answers_415_to_another_media_type(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post("/notes", content=b'{"text": "x"}', headers={"content-type": content_type})
    body = problem(response, 415)
    assert body["type"] == "https://rae.dev/problems/unsupported-media-type"
    assert "application/json" in body["detail"]


async def test_a_json_route_answers_415_to_a_body_without_a_media_type(client: httpx.AsyncClient) -> None:
    # httpx sends no content-type for raw bytes.
    problem(await client.post("/notes", content=b'{"text": "x"}'), 415)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"]
)
async def test_json_media_types_are_read(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post("/notes", content=b'{"text": "x"}', headers={"content-type": content_type})
    assert response.status_code == 200, response.text
