"""Document ingestion core: parse txt, md, html, pdf and docx files, then chunk them for memories.

No web framework and no database here: the ingest route calls `parse` then `chunk`, maps
`UnsupportedDocumentType` to 415 and `EmptyDocument` / `CorruptDocument` to 422 (all carry a
stable `slug` and a user-facing `message`), and enforces upload size limits itself.
"""

from rae_memory.ingest.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP_CHARS, Chunk, chunk
from rae_memory.ingest.detection import SUPPORTED_TYPES, FileType
from rae_memory.ingest.document import (
    SECTION_SEPARATOR,
    CorruptDocument,
    DocumentKind,
    EmptyDocument,
    IngestError,
    ParsedDocument,
    Section,
    UnsupportedDocumentType,
)
from rae_memory.ingest.parsers import parse

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_OVERLAP_CHARS",
    "SECTION_SEPARATOR",
    "SUPPORTED_TYPES",
    "Chunk",
    "CorruptDocument",
    "DocumentKind",
    "EmptyDocument",
    "FileType",
    "IngestError",
    "ParsedDocument",
    "Section",
    "UnsupportedDocumentType",
    "chunk",
    "parse",
]
