"""Bad input to the memory service answers a 4xx problem naming what is wrong, never a 5xx:
found by fuzzing the gateway's OpenAPI (issue #16, findings 5 and 6)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from rae_common.contracts.common import MAX_CONTENT_CHARS
from rae_common.testing import error_locs, problem


async def stored(
    client: httpx.AsyncClient, tenant: dict[str, str], content: str = "Kim drinks oolong"
) -> str:
    response = await client.post("/v1/memories", json={"content": content}, headers=tenant)
    assert response.status_code == 201, response.text
    memory_id: str = response.json()["id"]
    return memory_id


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"content": "a\x00b"}, ["body", "content"]),
        ({"content": "ok", "tags": ["t\x00"]}, ["body", "tags", "0"]),
        ({"content": "ok", "subject": "\x00"}, ["body", "subject"]),
        ({"content": "ok", "metadata": {"k": "v\x00"}}, ["body", "metadata", "k"]),
    ],
)
async def test_nul_in_a_stored_field_is_a_422_naming_it(
    client: httpx.AsyncClient, tenant: dict[str, str], body: dict[str, Any], loc: list[str]
) -> None:
    assert error_locs(problem(await client.post("/v1/memories", json=body, headers=tenant), 422)) == [loc]


async def test_nul_in_search_list_and_erase_is_a_422(
    client: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    searched = await client.post("/v1/search/hybrid", json={"query": "tea\x00"}, headers=tenant)
    assert error_locs(problem(searched, 422)) == [["body", "query"]]
    listed = await client.get("/v1/memories", params={"subject": "kim\x00"}, headers=tenant)
    assert error_locs(problem(listed, 422)) == [["query", "subject"]]
    erased = await client.delete("/v1/memories", params={"subject": "kim\x00"}, headers=tenant)
    assert error_locs(problem(erased, 422)) == [["query", "subject"]]


async def test_nul_in_an_ingest_form_field_is_a_422(
    client: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/memories/ingest",
        files={"file": ("notes.txt", b"Kim drinks oolong.", "text/plain")},
        data={"subject": "kim\x00"},
        headers=tenant,
    )
    assert error_locs(problem(response, 422)) == [["body", "subject"]]


async def test_patch_with_null_tags_is_a_422_saying_how_to_clear_them(
    client: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    memory_id = await stored(client, tenant)
    for field in ("tags", "content", "layer", "metadata", "importance"):
        body = problem(
            await client.patch(f"/v1/memories/{memory_id}", json={field: None}, headers=tenant), 422
        )
        assert error_locs(body) == [["body", field]], field
    assert (
        "[]"
        in problem(await client.patch(f"/v1/memories/{memory_id}", json={"tags": None}, headers=tenant), 422)[
            "errors"
        ][0]["msg"]
    )
    # Nullable fields still clear with null.
    cleared = await client.patch(
        f"/v1/memories/{memory_id}", json={"subject": None, "tags": []}, headers=tenant
    )
    assert cleared.status_code == 200, cleared.text


async def test_search_with_every_weight_zero_is_a_422(
    client: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    await stored(client, tenant)
    zero = {"vector": 0, "lexical": 0, "recency": 0, "importance": 0}
    body = problem(
        await client.post("/v1/search/hybrid", json={"query": "tea", "weights": zero}, headers=tenant), 422
    )
    assert error_locs(body) == [["body", "weights"]]
    assert "above 0" in body["errors"][0]["msg"]
    one = await client.post(
        "/v1/search/hybrid", json={"query": "tea", "weights": {**zero, "recency": 0.5}}, headers=tenant
    )
    assert one.status_code == 200, one.text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
async def test_a_non_finite_metadata_filter_is_a_422(
    client: httpx.AsyncClient, tenant: dict[str, str], value: str
) -> None:
    body = problem(await client.get("/v1/memories", params={"metadata": f"n={value}"}, headers=tenant), 422)
    assert error_locs(body) == [["query", "metadata", "0"]]


async def test_content_limit_is_the_one_every_service_on_the_path_honours(
    client: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    # The longest content is stored and embedded; one character more is refused up front
    # (before: accepted by memory, then refused by ml as a 502).
    longest = ("lorem ipsum " * (MAX_CONTENT_CHARS // 12 + 1))[:MAX_CONTENT_CHARS]
    assert len(await stored(client, tenant, longest)) == 36
    too_long = await client.post("/v1/memories", json={"content": longest + "x"}, headers=tenant)
    assert error_locs(problem(too_long, 422)) == [["body", "content"]]
    memory_id = await stored(client, tenant)
    patched = await client.patch(f"/v1/memories/{memory_id}", json={"content": longest + "x"}, headers=tenant)
    assert error_locs(problem(patched, 422)) == [["body", "content"]]


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("report.pdf", "application/pdf"),
        ("report.pdf", "application/octet-stream"),
        (
            "report.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ],
)
async def test_text_named_as_pdf_or_docx_is_refused_not_stored_as_text(
    client: httpx.AsyncClient, tenant: dict[str, str], filename: str, content_type: str
) -> None:
    response = await client.post(
        "/v1/memories/ingest",
        files={"file": (filename, b"Just some plain text, not a document.", content_type)},
        headers=tenant,
    )
    body = problem(response, 422)
    assert body["type"] == "https://rae.dev/problems/corrupt-document"
    assert (await client.get("/v1/memories", headers=tenant)).json()["items"] == []


async def test_text_plain_to_a_json_route_is_a_415(client: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    response = await client.post(
        "/v1/memories", content=b'{"content": "x"}', headers={**tenant, "content-type": "text/plain"}
    )
    problem(response, 415)


async def test_a_newline_in_a_path_segment_is_a_4xx(
    client: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    response = await client.get(f"/v1/memories/{uuid.uuid4()}%0A", headers=tenant)
    assert response.status_code == 422, response.text
