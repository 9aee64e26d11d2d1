"""The gateway refuses bad input itself with a 4xx problem, before anything reaches a service
(issue #16, findings 5 and 6: a fuzzing run had found 5xx answers to these)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from rae_common.contracts.common import MAX_CONTENT_CHARS
from rae_common.testing import error_locs, problem

from .conftest import ADMIN

ALL = ("memories:read", "memories:write", "ml:use", "events:read")


@pytest.mark.parametrize("tenant_id", ["acme\n", "acme\r\n", "\nacme", "ac\nme"])
async def test_a_tenant_id_is_matched_whole(gateway: httpx.AsyncClient, tenant_id: str) -> None:
    response = await gateway.post("/v1/admin/tenants", json={"id": tenant_id}, headers=ADMIN)
    assert error_locs(problem(response, 422)) == [["body", "id"]]


async def test_a_newline_in_a_tenant_path_segment_is_a_4xx(gateway: httpx.AsyncClient, upstream) -> None:
    for path in (
        "/v1/governance/tenant/acme%0A/budget",
        "/v1/governance/tenant/acme%0A",
        "/v1/admin/tenants/acme%0A",
    ):
        response = await gateway.get(path, headers=ADMIN)
        assert response.status_code == 422, (path, response.text)
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("method", "target", "kwargs", "loc"),
    [
        ("POST", "/v1/memories", {"json": {"content": "a\x00b"}}, ["body", "content"]),
        (
            "POST",
            "/v1/memories",
            {"json": {"content": "ok", "metadata": {"k\x00": 1}}},
            ["body", "metadata", "k\x00", "[key]"],
        ),
        ("POST", "/v1/search/hybrid", {"json": {"query": "tea\x00"}}, ["body", "query"]),
        ("POST", "/v1/ml/embed", {"json": {"texts": ["a\x00"]}}, ["body", "texts", "0"]),
        ("GET", "/v1/memories", {"params": {"subject": "kim\x00"}}, ["query", "subject"]),
        ("DELETE", "/v1/memories", {"params": {"subject": "kim\x00"}}, ["query", "subject"]),
        ("GET", "/v1/events/log", {"params": {"type": "memory.created\x00"}}, ["query", "type"]),
        ("POST", "/v1/memories/ingest", {"json": {"text": "a\x00", "filename": "a.txt"}}, ["body", "text"]),
        (
            "POST",
            "/v1/memories/ingest",
            {"files": {"file": ("a.txt", b"hello", "text/plain")}, "data": {"subject": "a\x00"}},
            ["body", "subject"],
        ),
    ],
)
async def test_nul_is_a_422_naming_the_field_and_never_forwarded(
    gateway: httpx.AsyncClient, upstream, bearer, method: str, target: str, kwargs: dict, loc: list[str]
) -> None:
    response = await gateway.request(method, target, headers=bearer(*ALL), **kwargs)
    assert error_locs(problem(response, 422)) == [loc]
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("method", "target", "kwargs", "loc"),
    [
        ("PATCH", f"/v1/memories/{uuid.uuid4()}", {"json": {"tags": None}}, ["body", "tags"]),
        (
            "POST",
            "/v1/search/hybrid",
            {"json": {"query": "tea", "weights": {"vector": 0, "lexical": 0, "recency": 0, "importance": 0}}},
            ["body", "weights"],
        ),
        ("GET", "/v1/memories", {"params": {"metadata": "n=NaN"}}, ["query", "metadata", "0"]),
        ("POST", "/v1/memories", {"json": {"content": "x" * (MAX_CONTENT_CHARS + 1)}}, ["body", "content"]),
        (
            "POST",
            "/v1/memories/batch",
            {"json": {"items": [{"content": "x" * (MAX_CONTENT_CHARS + 1)}]}},
            ["body", "items", "0", "content"],
        ),
        (
            "POST",
            "/v1/ml/embed",
            {"json": {"texts": ["x" * (MAX_CONTENT_CHARS + 1)]}},
            ["body", "texts", "0"],
        ),
    ],
)
async def test_values_no_service_can_serve_are_422_at_the_gateway(
    gateway: httpx.AsyncClient, upstream, bearer, method: str, target: str, kwargs: dict, loc: list[str]
) -> None:
    response = await gateway.request(method, target, headers=bearer(*ALL), **kwargs)
    assert error_locs(problem(response, 422)) == [loc]
    assert upstream.requests == []


async def test_text_plain_to_a_json_route_is_a_415(gateway: httpx.AsyncClient, upstream, bearer) -> None:
    response = await gateway.post(
        "/v1/memories", content=b'{"content": "x"}', headers={**bearer(*ALL), "content-type": "text/plain"}
    )
    assert problem(response, 415)["type"] == "https://rae.dev/problems/unsupported-media-type"
    assert upstream.requests == []
