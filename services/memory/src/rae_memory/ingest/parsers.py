"""Bytes of a txt, md, html, pdf or docx file to a `ParsedDocument` that keeps its structure."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

import docx
import pypdf
from bs4 import BeautifulSoup
from bs4.element import NavigableString, PreformattedString, Tag
from bs4.exceptions import ParserRejectedMarkup
from docx.styles.style import ParagraphStyle
from docx.table import Table
from docx.text.paragraph import Paragraph
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pypdf.errors import DependencyError, FileNotDecryptedError

from rae_memory.ingest._text import decode_text, normalise_text
from rae_memory.ingest.detection import detect
from rae_memory.ingest.document import (
    CorruptDocument,
    DocumentKind,
    EmptyDocument,
    ParsedDocument,
    Section,
)

__all__ = ["parse"]

# Declared sizes inside a DOCX bound what unzipping it can allocate (a ZIP bomb is refused).
MAX_DOCX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024


def parse(data: bytes, *, filename: str | None, content_type: str | None) -> ParsedDocument:
    """Parse an uploaded file; raises `UnsupportedDocumentType`, `EmptyDocument` or `CorruptDocument`.

    Sections keep the structure: heading paths for markdown, HTML and DOCX, pages for PDFs, and
    paragraphs separated by a blank line inside a section. Sections without text are left out.
    """
    if not data.strip():
        raise EmptyDocument("The document is empty.")
    detected = detect(data, filename=filename, content_type=content_type)
    match detected.kind:
        case DocumentKind.TEXT:
            doc = _parse_text(decode_text(data, detected.charset))
        case DocumentKind.MARKDOWN:
            doc = _parse_markdown(decode_text(data, detected.charset))
        case DocumentKind.HTML:
            doc = _parse_html(decode_text(data, detected.charset or _html_meta_charset(data)))
        case DocumentKind.PDF:
            doc = _parse_pdf(data)
        case DocumentKind.DOCX:
            doc = _parse_docx(data)
    if not doc.sections:
        raise EmptyDocument(_EMPTY_MESSAGES.get(doc.kind, "The document has no text."))
    return doc


_EMPTY_MESSAGES = {
    DocumentKind.PDF: "The PDF has no extractable text (a scanned PDF needs OCR first).",
    DocumentKind.DOCX: "The Word document has no text.",
}


class _Outline:
    """Collects paragraphs under the current heading path; a heading closes the running section."""

    def __init__(self) -> None:
        self._headings: list[tuple[int, str]] = []
        self._blocks: list[str] = []
        self.sections: list[Section] = []
        self.first_heading: str | None = None

    def heading(self, level: int, text: str) -> None:
        self._flush()
        text = " ".join(text.split())
        if not text:
            return
        if self.first_heading is None:
            self.first_heading = text
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, text))

    def add(self, block: str) -> None:
        if block.strip():
            self._blocks.append(block)

    def finish(self) -> list[Section]:
        self._flush()
        return self.sections

    def _flush(self) -> None:
        text = normalise_text("\n\n".join(self._blocks))
        self._blocks = []
        if text:
            self.sections.append(Section(tuple(heading for _, heading in self._headings), text))


# --- plain text ---------------------------------------------------------------------------------


def _parse_text(text: str) -> ParsedDocument:
    text = normalise_text(text)
    sections = [Section((), text)] if text else []
    return ParsedDocument(DocumentKind.TEXT, None, sections)


# --- markdown -----------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n(?:---|\.\.\.)(?:\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.MULTILINE)


def _parse_markdown(text: str) -> ParsedDocument:
    text = normalise_text(text)
    title = None
    front_matter = _FRONT_MATTER.match(text)
    if front_matter:
        found = _FRONT_MATTER_TITLE.search(front_matter.group(1))
        title = found.group(1).strip("\"'") if found else None
        text = text[front_matter.end() :]
    lines = text.split("\n")
    outline = _Outline()
    tokens = MarkdownIt("commonmark").parse(text)
    body_start = 0
    for position, token in enumerate(tokens):
        # Only top-level headings give structure: one inside a quote or list is body text.
        if token.type != "heading_open" or token.level != 0 or token.map is None:
            continue
        start, end = token.map
        outline.add("\n".join(lines[body_start:start]))
        outline.heading(int(token.tag[1]), _inline_text(tokens[position + 1]))
        body_start = end
    outline.add("\n".join(lines[body_start:]))
    sections = outline.finish()
    return ParsedDocument(DocumentKind.MARKDOWN, title or outline.first_heading, sections)


def _inline_text(token: Token) -> str:
    """The heading's words without emphasis or link markup."""
    return "".join(" " if child.type == "softbreak" else child.content for child in token.children or [])


# --- html ---------------------------------------------------------------------------------------

_DROPPED_TAGS = ("script", "style", "noscript", "template", "nav", "footer", "svg", "iframe", "head")
_HEADING_TAGS = {f"h{level}": level for level in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "dd", "details", "dialog", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "form", "header", "hgroup", "hr", "html", "li",
        "main", "p", "section", "summary",
    }
)  # fmt: skip
_WHITESPACE = re.compile(r"\s+")
_LIST_TAGS = frozenset({"ol", "ul"})
_SPACED_TAGS = _BLOCK_TAGS | {"br", "ol", "ul", "pre", "table", "tr", "td", "th", *_HEADING_TAGS}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
# An XML declaration before a non-<html> root makes BeautifulSoup warn; it carries no text.
_XML_DECLARATION = re.compile(r"<\?xml\s[^>]*>", re.IGNORECASE)


def _html_meta_charset(data: bytes) -> str | None:
    found = _META_CHARSET.search(data[:2048])
    return found.group(1).decode("ascii") if found else None


def _parse_html(markup: str) -> ParsedDocument:
    # A trailing newline keeps BeautifulSoup from warning that a short text looks like a file name.
    markup = _XML_DECLARATION.sub("", markup) + "\n"
    outline = _Outline()
    try:
        soup = BeautifulSoup(markup, "html.parser")
        title = soup.title.get_text(" ", strip=True) if soup.title else ""
        for tag in soup.find_all(_DROPPED_TAGS):
            tag.decompose()
        _HtmlWalker(outline).walk(soup)
    except ParserRejectedMarkup as exc:
        raise CorruptDocument("The HTML could not be parsed.") from exc
    except RecursionError as exc:
        raise CorruptDocument("The HTML is nested too deeply to be read.") from exc
    sections = outline.finish()
    return ParsedDocument(DocumentKind.HTML, title or outline.first_heading, sections)


class _HtmlWalker:
    """Turns the tree into headings and paragraphs; lists and tables become one text block each."""

    def __init__(self, outline: _Outline) -> None:
        self._outline = outline
        self._inline: list[str] = []

    def walk(self, node: Tag) -> None:
        self._walk(node)
        self._flush()

    def _walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, doctype, CDATA
                    # Line breaks in the source are spaces; only <br> breaks a line.
                    self._inline.append(_collapse_keep_edges(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _HEADING_TAGS:
                self._flush()
                self._outline.heading(_HEADING_TAGS[name], _flat_text(child))
            elif name in _LIST_TAGS:
                self._flush()
                self._outline.add("\n".join(_list_lines(child, depth=0)))
            elif name == "table":
                self._flush()
                self._outline.add(_table_text(child))
            elif name == "pre":
                self._flush()
                self._outline.add(child.get_text())
            elif name == "br":
                self._inline.append("\n")
            elif name in _BLOCK_TAGS:
                self._flush()
                self._walk(child)
                self._flush()
            else:
                self._walk(child)

    def _flush(self) -> None:
        text = "".join(self._inline)
        self._inline = []
        self._outline.add("\n".join(_collapse(line) for line in text.split("\n") if line.strip()))


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _collapse_keep_edges(text: str) -> str:
    return _WHITESPACE.sub(" ", text)


def _list_lines(node: Tag, depth: int) -> Iterator[str]:
    """One line per item, `-` or `N.` first, nested lists indented under their item."""
    ordered = node.name == "ol"
    for number, item in enumerate(node.find_all("li", recursive=False), start=1):
        nested = [child for child in item.children if isinstance(child, Tag) and child.name in _LIST_TAGS]
        own = _collapse(_flat_text(item, skip=_LIST_TAGS))
        marker = f"{number}." if ordered else "-"
        if own:
            yield f"{'  ' * depth}{marker} {own}"
        for sublist in nested:
            yield from _list_lines(sublist, depth + 1)


def _flat_text(node: Tag, skip: frozenset[str] = frozenset()) -> str:
    """The text of `node` on one line: a space where a block ends, none around inline markup."""
    parts = []
    for child in node.children:
        if isinstance(child, Tag):
            if child.name in skip:
                continue
            space = " " if child.name in _SPACED_TAGS else ""
            parts.append(space + _flat_text(child) + space)
        elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
            parts.append(str(child))
    return "".join(parts)


def _table_text(table: Tag) -> str:
    rows = []
    for row in table.find_all("tr"):
        cells = [_collapse(_flat_text(cell)) for cell in row.find_all(("th", "td"), recursive=False)]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


# --- pdf ----------------------------------------------------------------------------------------


def _parse_pdf(data: bytes) -> ParsedDocument:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = normalise_text(page.extract_text())
            if text:
                sections.append(Section((), text, page=number))
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except (FileNotDecryptedError, DependencyError) as exc:
        raise CorruptDocument(
            "The PDF is password-protected: remove the password and upload it again."
        ) from exc
    except Exception as exc:
        # pypdf reports a broken file with its own errors and, deeper in, with built-in ones.
        raise CorruptDocument("The PDF is damaged or incomplete and could not be read.") from exc
    return ParsedDocument(DocumentKind.PDF, _clean_title(title), sections)


# --- docx ---------------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"Heading ([1-9])")
_MAX_STYLE_DEPTH = 10  # a hand-made file can make styles inherit in a cycle
_DAMAGED_DOCX = "The Word document is damaged or incomplete and could not be read."


def _parse_docx(data: bytes) -> ParsedDocument:
    _check_unzipped_size(data)
    try:
        document = docx.Document(io.BytesIO(data))
        core_title = document.core_properties.title
        outline = _Outline()
        docx_title = None
        list_items: list[str] = []  # consecutive list paragraphs make one block, one item a line
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph) and _is_docx_list_item(block):
                list_items.append(f"- {block.text.strip()}")
                continue
            outline.add("\n".join(list_items))
            list_items = []
            if isinstance(block, Table):
                outline.add(_docx_table_text(block))
                continue
            level = _docx_heading_level(block.style)
            if level is None:
                outline.add(block.text)
                continue
            outline.heading(level, block.text)
            if level == 0 and docx_title is None:
                docx_title = block.text
        outline.add("\n".join(list_items))
    except Exception as exc:
        # python-docx surfaces a broken package as whatever zipfile, lxml or its own code raised.
        raise CorruptDocument(_DAMAGED_DOCX) from exc
    sections = outline.finish()
    title = _clean_title(core_title or docx_title or outline.first_heading)
    return ParsedDocument(DocumentKind.DOCX, title, sections)


def _check_unzipped_size(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except Exception as exc:  # zipfile raises many kinds on a damaged archive
        raise CorruptDocument(_DAMAGED_DOCX) from exc
    if total > MAX_DOCX_UNCOMPRESSED_BYTES:
        limit_mib = MAX_DOCX_UNCOMPRESSED_BYTES // 2**20
        raise CorruptDocument(f"The Word document unpacks to more than {limit_mib} MiB and was refused.")


def _docx_heading_level(style: ParagraphStyle | None) -> int | None:
    """`Title` is level 0, `Heading N` level N; a custom style inherits the level it is based on."""
    for _ in range(_MAX_STYLE_DEPTH):
        if style is None:
            return None
        name = style.name or ""
        if name == "Title":
            return 0
        found = _HEADING_STYLE.fullmatch(name)
        if found:
            return int(found.group(1))
        style = style.base_style
    return None


def _is_docx_list_item(paragraph: Paragraph) -> bool:
    style = paragraph.style
    return style is not None and (style.name or "").startswith("List") and bool(paragraph.text.strip())


def _docx_table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells = [_collapse(cell.text) for cell in row.cells]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _clean_title(title: str | None) -> str | None:
    return _collapse(title or "") or None
