"""Which kind of document some bytes are, from their content type, file name and first bytes.

The rule, in order:

1. The claim: the file name's extension when it is a supported one, else the content type (its
   parameters ignored) when it is a supported one.
2. Content decides for the binary formats: bytes starting with `%PDF-` (or binary bytes with it
   in their first KiB, as readers allow) are a PDF, and a ZIP archive holding `word/document.xml`
   is a DOCX, also when named or typed as text. A file claimed as PDF or DOCX must be that
   format: anything else (another format, text, a ZIP without `word/document.xml`) is a corrupt
   document, never stored for what it might be. Any other ZIP archive is unsupported.
3. Binary content (more than a few NUL or other control bytes) that rule 2 did not recognise is
   unsupported, even when claimed as text: an image named `notes.txt` is not text.
4. Text content is read as the claimed text kind. Invalid UTF-8 in text is not an error: it is
   decoded with replacement characters.
5. Without a claim: unsupported when an extension or a specific content type was given (`.exe`,
   `image/png`), else sniffed: HTML when it starts with an `<html>` tag or doctype, plain text
   otherwise.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from types import MappingProxyType

from rae_memory.ingest._text import decode_text, looks_like_text
from rae_memory.ingest.document import CorruptDocument, DocumentKind, UnsupportedDocumentType

__all__ = ["SUPPORTED_TYPES", "FileType", "Detected", "detect"]


@dataclass(frozen=True, slots=True)
class FileType:
    content_types: tuple[str, ...]
    extensions: tuple[str, ...]


DOCX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

SUPPORTED_TYPES: Mapping[DocumentKind, FileType] = MappingProxyType(
    {
        DocumentKind.TEXT: FileType(("text/plain",), (".txt", ".text")),
        DocumentKind.MARKDOWN: FileType(("text/markdown", "text/x-markdown"), (".md", ".markdown")),
        DocumentKind.HTML: FileType(("text/html", "application/xhtml+xml"), (".html", ".htm", ".xhtml")),
        DocumentKind.PDF: FileType(("application/pdf",), (".pdf",)),
        DocumentKind.DOCX: FileType((DOCX_CONTENT_TYPE,), (".docx",)),
    }
)

_BY_CONTENT_TYPE = {ct: kind for kind, t in SUPPORTED_TYPES.items() for ct in t.content_types}
_BY_EXTENSION = {ext: kind for kind, t in SUPPORTED_TYPES.items() for ext in t.extensions}
# What clients send when they do not know: no claim at all.
_GENERIC_CONTENT_TYPES = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}
)
_BINARY_KINDS = frozenset({DocumentKind.PDF, DocumentKind.DOCX})

_PDF_MAGIC = b"%PDF-"
_PDF_MAGIC_WINDOW = 1024
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_DOCX_MAIN_PART = "word/document.xml"
_HTML_STARTS = ("<!doctype html", "<html")


@dataclass(frozen=True, slots=True)
class Detected:
    kind: DocumentKind
    charset: str | None  # from the content type's `charset` parameter


def detect(data: bytes, *, filename: str | None, content_type: str | None) -> Detected:
    """The kind to parse `data` as, or `UnsupportedDocumentType` / `CorruptDocument` (see the module)."""
    media_type, charset = _split_content_type(content_type)
    extension = _extension(filename)
    claim = _BY_EXTENSION.get(extension) or _BY_CONTENT_TYPE.get(media_type)

    pdf_at = data.find(_PDF_MAGIC, 0, _PDF_MAGIC_WINDOW)
    # Junk before the header is tolerated in binary files only: a text that quotes "%PDF-" is text.
    if pdf_at == 0 or (pdf_at > 0 and not looks_like_text(data)):
        return _as_claimed(DocumentKind.PDF, claim)
    if data.startswith(_ZIP_MAGICS):
        if _is_docx_package(data):
            return _as_claimed(DocumentKind.DOCX, claim)
        if claim is DocumentKind.DOCX:
            raise CorruptDocument(
                "The file is not a valid DOCX document: the archive has no word/document.xml."
            )
        raise UnsupportedDocumentType(f"ZIP archives are not supported. {supported_types_hint()}")

    if claim in _BINARY_KINDS:
        # A name or type saying PDF or DOCX on other bytes is a damaged or mislabelled upload:
        # storing it as text would keep whatever those bytes are under the document's name.
        raise CorruptDocument(f"The file is not a valid {claim.name} document.")
    if not looks_like_text(data):
        raise UnsupportedDocumentType(f"The file holds binary content. {supported_types_hint()}")

    if claim is not None:
        return Detected(claim, charset)
    if claim is None and (extension or media_type not in _GENERIC_CONTENT_TYPES):
        declared = extension or media_type
        raise UnsupportedDocumentType(f"'{declared}' documents are not supported. {supported_types_hint()}")
    return Detected(_sniff_text_kind(data, charset), charset)


def _as_claimed(kind: DocumentKind, claim: DocumentKind | None) -> Detected:
    if claim in _BINARY_KINDS and claim is not kind:
        raise CorruptDocument(f"The file is named as a {claim.name} document but is a {kind.name} document.")
    return Detected(kind, None)


def supported_types_hint() -> str:
    extensions = ", ".join(ext for t in SUPPORTED_TYPES.values() for ext in t.extensions)
    return f"Supported: {extensions}."


def _split_content_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    media_type, *params = content_type.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'")
    return media_type.strip().lower(), charset


def _extension(filename: str | None) -> str:
    if not filename:
        return ""
    # Browsers on Windows may send a full path; either separator ends the directory part.
    name = PureWindowsPath(PurePosixPath(filename).name).name
    return PurePosixPath(name).suffix.lower()


def _is_docx_package(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return _DOCX_MAIN_PART in archive.namelist()
    except Exception:  # zipfile raises many kinds on a damaged archive: none of them makes a DOCX
        return False


def _sniff_text_kind(data: bytes, charset: str | None) -> DocumentKind:
    head = decode_text(data[:512], charset).lstrip().lower()
    return DocumentKind.HTML if head.startswith(_HTML_STARTS) else DocumentKind.TEXT
