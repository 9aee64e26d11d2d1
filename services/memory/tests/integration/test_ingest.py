"""Document ingestion against the real database, broker and embedding model."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from rae_common.testing import serve_app
from rae_memory.main import MemorySettings, create_app

SAMPLES = Path(__file__).resolve().parents[4] / "samples"
DOCS = {
    "team-handbook.md": ("text/markdown", "markdown"),
    "product-faq.html": ("text/html", "html"),
    "meeting-notes.txt": ("text/plain", "text"),
    "architecture-overview.pdf": ("application/pdf", "pdf"),
    "onboarding-guide.docx": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
}


async def count(client: httpx.AsyncClient, tenant) -> int:
    return len((await client.get("/v1/memories", params={"limit": 200}, headers=tenant)).json()["items"])


@pytest.mark.parametrize("name", sorted(DOCS))
async def test_every_supported_type_becomes_linked_chunks(
    client: httpx.AsyncClient, tenant, name: str
) -> None:
    content_type, kind = DOCS[name]
    response = await client.post(
        "/v1/memories/ingest",
        files={"file": (name, (SAMPLES / name).read_bytes(), content_type)},
        data={"tags": "docs, northwind", "subject": "northwind", "metadata": '{"source": "samples"}'},
        headers=tenant,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == kind
    assert body["chunk_count"] == len(body["memory_ids"]) >= 1
    first = (await client.get(f"/v1/memories/{body['memory_ids'][0]}", headers=tenant)).json()
    assert first["document_id"] == body["document_id"]
    assert first["chunk_index"] == 0
    assert first["layer"] == "semantic"
    assert first["tags"] == ["docs", "northwind"]
    assert first["metadata"]["document"] == name
    assert first["metadata"]["source"] == "samples"
    assert first["subject"] == "northwind"


async def test_json_ingest_and_search_finds_a_fact(client: httpx.AsyncClient, tenant) -> None:
    text = (SAMPLES / "team-handbook.md").read_text()
    response = await client.post(
        "/v1/memories/ingest", json={"text": text, "filename": "handbook.md"}, headers=tenant
    )
    assert response.status_code == 201
    hits = await client.post(
        "/v1/search/hybrid", json={"query": "When does Tern 2.0 ship?", "k": 3}, headers=tenant
    )
    assert any("17 June 2025" in hit["content"] for hit in hits.json()["results"])


def corrupt_docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("not-word.txt", "hello")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "content_type", "status"),
    [
        ("picture.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png", 415),
        ("empty.txt", b"   \n\n  ", "text/plain", 422),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj <<", "application/pdf", 422),
        ("broken.docx", corrupt_docx(), "application/octet-stream", 422),
    ],
)
async def test_bad_documents_are_problems_and_store_nothing(
    client: httpx.AsyncClient, tenant, name: str, data: bytes, content_type: str, status: int
) -> None:
    response = await client.post(
        "/v1/memories/ingest", files={"file": (name, data, content_type)}, headers=tenant
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await count(client, tenant) == 0


async def test_oversized_document_is_413_and_stores_nothing(memory_settings: MemorySettings, tenant) -> None:
    settings = memory_settings.model_copy(update={"max_ingest_bytes": 1000})
    async with serve_app(create_app(settings)) as small:
        response = await small.post(
            "/v1/memories/ingest", files={"file": ("big.txt", b"word " * 400, "text/plain")}, headers=tenant
        )
        assert response.status_code == 413
        assert await count(small, tenant) == 0


async def test_ingest_without_a_file_or_with_another_media_type(client: httpx.AsyncClient, tenant) -> None:
    no_file = await client.post(
        "/v1/memories/ingest", data={"tags": "x"}, files={"other": ("a", b"b")}, headers=tenant
    )
    assert no_file.status_code == 422
    xml = await client.post(
        "/v1/memories/ingest", content=b"<a/>", headers={**tenant, "content-type": "application/xml"}
    )
    assert xml.status_code == 415
