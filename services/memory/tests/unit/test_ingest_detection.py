"""Which parser a file gets: by content type, by extension, by its first bytes, and when they disagree."""

from __future__ import annotations

from pathlib import Path

import pytest

from rae_memory.ingest import SUPPORTED_TYPES, CorruptDocument, DocumentKind, parse

SAMPLES = Path(__file__).resolve().parents[4] / "samples"
PDF = (SAMPLES / "architecture-overview.pdf").read_bytes()
DOCX = (SAMPLES / "onboarding-guide.docx").read_bytes()
MARKDOWN = b"# Owners\n\nMei Chen owns Harbor."
HTML = b"<!DOCTYPE html><html><body><h1>Owners</h1><p>Mei Chen owns Harbor.</p></body></html>"


@pytest.mark.parametrize(
    ("data", "content_type", "kind"),
    [
        (MARKDOWN, "text/markdown", DocumentKind.MARKDOWN),
        (MARKDOWN, "text/x-markdown; charset=utf-8", DocumentKind.MARKDOWN),
        (MARKDOWN, "text/plain", DocumentKind.TEXT),
        (HTML, "TEXT/HTML; charset=UTF-8", DocumentKind.HTML),
        (HTML, "application/xhtml+xml", DocumentKind.HTML),
        (PDF, "application/pdf", DocumentKind.PDF),
        (DOCX, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", DocumentKind.DOCX),
    ],
)
def test_detection_by_content_type(data: bytes, content_type: str, kind: DocumentKind) -> None:
    assert parse(data, filename=None, content_type=content_type).kind is kind


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("owners.md", DocumentKind.MARKDOWN),
        ("OWNERS.MARKDOWN", DocumentKind.MARKDOWN),
        ("owners.txt", DocumentKind.TEXT),
        ("owners.htm", DocumentKind.HTML),
        ("owners.html", DocumentKind.HTML),
        ("C:\\Users\\mei\\Documents\\owners.md", DocumentKind.MARKDOWN),  # a browser on Windows
        ("notes/2025/owners.md", DocumentKind.MARKDOWN),
    ],
)
def test_detection_by_extension(filename: str, kind: DocumentKind) -> None:
    data = HTML if kind is DocumentKind.HTML else MARKDOWN

    assert parse(data, filename=filename, content_type=None).kind is kind


def test_the_extension_wins_over_a_generic_text_content_type() -> None:
    # Upload clients often send text/plain or octet-stream for .md files.
    assert parse(MARKDOWN, filename="owners.md", content_type="text/plain").kind is DocumentKind.MARKDOWN
    doc = parse(MARKDOWN, filename="owners.md", content_type="application/octet-stream")
    assert doc.sections[0].heading_path == ("Owners",)


@pytest.mark.parametrize(
    ("data", "filename", "content_type", "kind"),
    [
        (PDF, None, None, DocumentKind.PDF),
        (PDF, "upload.bin", "application/octet-stream", DocumentKind.PDF),
        (PDF, "architecture.txt", "text/plain", DocumentKind.PDF),  # content wins over the label
        (DOCX, None, "application/octet-stream", DocumentKind.DOCX),
        (b"Every PDF file starts with %PDF-1.7 and ends with %%EOF.", None, None, DocumentKind.TEXT),
    ],
)
def test_detection_by_magic_bytes(
    data: bytes, filename: str | None, content_type: str | None, kind: DocumentKind
) -> None:
    assert parse(data, filename=filename, content_type=content_type).kind is kind


def test_pdf_with_binary_junk_before_the_header_is_still_a_pdf() -> None:
    assert parse(b"\x00\x01junk\n" + PDF, filename=None, content_type=None).kind is DocumentKind.PDF


@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        (b"Mei Chen owns Harbor.", "owners.pdf", "application/pdf"),
        (b"Mei Chen owns Harbor.", "owners.pdf", "application/octet-stream"),
        (b"Mei Chen owns Harbor.", None, "application/pdf"),
        (HTML, "owners.docx", None),
        (DOCX, "onboarding.pdf", "application/pdf"),
        (PDF, "architecture.docx", None),
    ],
)
def test_a_file_claimed_as_pdf_or_docx_must_be_one(
    data: bytes, filename: str | None, content_type: str | None
) -> None:
    # Before issue #16 these were stored as whatever the bytes looked like (text, HTML, DOCX).
    with pytest.raises(CorruptDocument):
        parse(data, filename=filename, content_type=content_type)


@pytest.mark.parametrize("content_type", [None, "", "application/octet-stream"])
def test_without_a_claim_text_is_sniffed(content_type: str | None) -> None:
    assert parse(MARKDOWN, filename=None, content_type=content_type).kind is DocumentKind.TEXT
    assert parse(HTML, filename="README", content_type=content_type).kind is DocumentKind.HTML


def test_supported_types_lists_every_kind_with_its_content_types_and_extensions() -> None:
    assert set(SUPPORTED_TYPES) == set(DocumentKind)
    assert "text/markdown" in SUPPORTED_TYPES[DocumentKind.MARKDOWN].content_types
    assert ".markdown" in SUPPORTED_TYPES[DocumentKind.MARKDOWN].extensions
    assert ".htm" in SUPPORTED_TYPES[DocumentKind.HTML].extensions
    assert SUPPORTED_TYPES[DocumentKind.PDF].content_types == ("application/pdf",)
    with pytest.raises(TypeError):
        SUPPORTED_TYPES[DocumentKind.PDF] = SUPPORTED_TYPES[DocumentKind.TEXT]  # type: ignore[index]
