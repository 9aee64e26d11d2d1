"""What a parsed document is, and the errors parsing can end with."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

__all__ = [
    "SECTION_SEPARATOR",
    "CorruptDocument",
    "DocumentKind",
    "EmptyDocument",
    "IngestError",
    "ParsedDocument",
    "Section",
    "UnsupportedDocumentType",
]

# Sections are joined with a blank line in `ParsedDocument.text`; chunk offsets count in that text.
SECTION_SEPARATOR = "\n\n"


class DocumentKind(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"
    PDF = "pdf"
    DOCX = "docx"


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading path (outermost first); `page` is 1-based, for PDFs only."""

    heading_path: tuple[str, ...]
    text: str
    page: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    kind: DocumentKind
    title: str | None
    sections: list[Section]

    @property
    def text(self) -> str:
        """The whole text, sections separated by `SECTION_SEPARATOR`."""
        return SECTION_SEPARATOR.join(section.text for section in self.sections)


class IngestError(Exception):
    """A document that cannot be ingested; `slug` is stable, `message` can be shown to the user."""

    slug: ClassVar[str] = "ingest-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedDocumentType(IngestError):
    slug = "unsupported-document-type"


class EmptyDocument(IngestError):
    slug = "empty-document"


class CorruptDocument(IngestError):
    slug = "corrupt-document"
