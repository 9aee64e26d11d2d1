"""Structure-aware chunking: a parsed document to pieces small enough to embed and recall.

Invariants (the tests hold them):

- A chunk lies in one section and carries its `heading_path` and `page`; sections are never
  merged, so no text loses the heading it was written under. Nothing is prefixed to `text`.
- `chunk.text == doc.text[chunk.char_start:chunk.char_end]`: offsets count in `ParsedDocument.text`
  (sections joined by `SECTION_SEPARATOR`); a chunk neither starts nor ends with whitespace and is
  never empty. `len(chunk.text) <= max_chars`.
- A section whose text fits in `max_chars` is one chunk. A longer one is cut at the last
  paragraph break in the second half of the window, else the last sentence end, line break, or
  space, else (one very long word) exactly at `max_chars`.
- The next chunk of the same section starts at the first word that begins within `overlap_chars`
  before the previous chunk's end, so consecutive chunks share at most `overlap_chars` characters
  and the overlap starts at a word boundary; there is no overlap when no word starts there (a cut
  inside a long word). Without overlap, only whitespace lies between consecutive chunks.
- Hence the chunks of a section, each less the part it shares with its predecessor and joined
  with the whitespace the original has between them, rebuild the section text exactly.
- The same document and arguments always give the same chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from rae_memory.ingest.document import SECTION_SEPARATOR, ParsedDocument

__all__ = ["DEFAULT_MAX_CHARS", "DEFAULT_OVERLAP_CHARS", "Chunk", "chunk"]

DEFAULT_MAX_CHARS = 1200
DEFAULT_OVERLAP_CHARS = 150


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    char_start: int
    char_end: int


# Where a chunk may end, best first; `True` when the cut goes after the match rather than before it.
_BREAKS: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"\n[^\S\n]*\n"), False),  # paragraph
    (re.compile(r"[.!?…][\"'”’)\]]*(?=\s)"), True),  # sentence
    (re.compile(r"\n"), False),  # line
    (re.compile(r"\s"), False),  # word
)
_WORD_START = re.compile(r"(?<=\s)\S")


def chunk(
    doc: ParsedDocument,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    overlap_chars: int = DEFAULT_OVERLAP_CHARS,
) -> list[Chunk]:
    """Split every section of `doc` into chunks of at most `max_chars` (see the module for the rules)."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    if not 0 <= overlap_chars < max_chars:
        raise ValueError(f"overlap_chars must be at least 0 and below max_chars, got {overlap_chars}")
    chunks: list[Chunk] = []
    offset = 0
    for section in doc.sections:
        for start, end in _spans(section.text, max_chars, overlap_chars):
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=section.text[start:end],
                    heading_path=section.heading_path,
                    page=section.page,
                    char_start=offset + start,
                    char_end=offset + end,
                )
            )
        offset += len(section.text) + len(SECTION_SEPARATOR)
    return chunks


def _spans(text: str, max_chars: int, overlap_chars: int) -> Iterator[tuple[int, int]]:
    # Cutting no earlier than this keeps chunks from being tiny and guarantees progress past the overlap.
    min_fill = max(max_chars // 2, (overlap_chars + max_chars + 1) // 2)
    stop = len(text.rstrip())
    start = _skip_space(text, 0)
    while start < stop:
        if stop - start <= max_chars:
            yield start, stop
            return
        end = _trim_end(text, start, _cut(text, start + min_fill, start + max_chars))
        yield start, end
        start = _skip_space(text, _next_start(text, start, end, overlap_chars))


def _cut(text: str, low: int, high: int) -> int:
    """The best end in [low, high] for a chunk; `high` when the window has no break at all."""
    for pattern, after in _BREAKS:
        best = None
        for found in pattern.finditer(text, low, min(len(text), high + 2)):
            position = found.end() if after else found.start()
            if position > high:
                break
            if position >= low:
                best = position
        if best is not None:
            return best
    return high


def _next_start(text: str, start: int, end: int, overlap_chars: int) -> int:
    found = _WORD_START.search(text, max(end - overlap_chars, start + 1), end)
    return found.start() if found else end


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start + 1 and text[end - 1].isspace():
        end -= 1
    return end
