"""Chunking: size bound, boundaries, overlap, headings kept, and the section text rebuilt from the chunks."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from rae_memory.ingest import (
    DEFAULT_MAX_CHARS,
    SECTION_SEPARATOR,
    Chunk,
    DocumentKind,
    ParsedDocument,
    Section,
    chunk,
    parse,
)

SAMPLES = Path(__file__).resolve().parents[4] / "samples"
SAMPLE_NAMES = [
    "team-handbook.md",
    "product-faq.html",
    "meeting-notes.txt",
    "architecture-overview.pdf",
    "onboarding-guide.docx",
]


def parsed_sample(name: str) -> ParsedDocument:
    return parse((SAMPLES / name).read_bytes(), filename=name, content_type=None)


def document(*texts: str) -> ParsedDocument:
    sections = [Section((f"Heading {number}",), text) for number, text in enumerate(texts)]
    return ParsedDocument(DocumentKind.TEXT, None, sections)


def overlap(previous: Chunk, current: Chunk) -> int:
    return max(0, previous.char_end - current.char_start)


def assert_invariants(doc: ParsedDocument, chunks: list[Chunk], max_chars: int, overlap_chars: int) -> None:
    """Every invariant the chunking module promises (see its docstring)."""
    full = doc.text
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text == full[c.char_start : c.char_end]
        assert c.text and c.text == c.text.strip()
        assert len(c.text) <= max_chars

    offset = 0
    position = 0
    for section in doc.sections:
        section_end = offset + len(section.text)
        own = []
        while position < len(chunks) and chunks[position].char_start < section_end:
            own.append(chunks[position])
            position += 1
        offset_next = section_end + len(SECTION_SEPARATOR)
        if not section.text.strip():
            assert not own
            offset = offset_next
            continue
        assert own, "a section with text has chunks"
        assert all(c.heading_path == section.heading_path and c.page == section.page for c in own)
        assert all(offset <= c.char_start and c.char_end <= section_end for c in own)  # never across sections

        rebuilt = own[0].text
        for previous, current in zip(own, own[1:], strict=False):
            assert current.char_start > previous.char_start
            shared = overlap(previous, current)
            if shared:
                assert shared <= overlap_chars
                assert full[current.char_start - 1].isspace(), "the overlap starts at a word"
                rebuilt += current.text[shared:]
            else:
                gap = full[previous.char_end : current.char_start]
                assert not gap.strip(), "only whitespace between chunks without overlap"
                rebuilt += gap + current.text
        assert rebuilt == section.text.strip()
        offset = offset_next
    assert position == len(chunks)


# --- the samples --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_NAMES)
@pytest.mark.parametrize(("max_chars", "overlap_chars"), [(1200, 150), (300, 60), (80, 20), (25, 0)])
def test_samples_keep_every_invariant(name: str, max_chars: int, overlap_chars: int) -> None:
    doc = parsed_sample(name)

    chunks = chunk(doc, max_chars=max_chars, overlap_chars=overlap_chars)

    assert_invariants(doc, chunks, max_chars, overlap_chars)


def test_chunks_carry_the_heading_path_of_their_section_and_nothing_is_prefixed() -> None:
    doc = parsed_sample("team-handbook.md")

    chunks = chunk(doc, max_chars=200, overlap_chars=40)

    meetings = [c for c in chunks if c.heading_path[-1:] == ("Meetings",)]
    assert len(meetings) > 1
    assert all(
        c.heading_path == ("Northwind Robotics Team Handbook", "How we work", "Meetings") for c in meetings
    )
    assert meetings[0].text.startswith("Daily stand-up is at 09:30 CET")


def test_pdf_chunks_carry_their_page() -> None:
    chunks = chunk(parsed_sample("architecture-overview.pdf"), max_chars=300, overlap_chars=50)

    storage = [c for c in chunks if "pgvector" in c.text]
    assert storage and all(c.page == 2 for c in storage)
    assert {c.page for c in chunks} == {1, 2, 3}


def test_short_sections_are_one_chunk_each_and_are_never_merged() -> None:
    doc = document("Mei Chen owns Harbor.", "Priya Raman leads Perception.")

    chunks = chunk(doc)

    assert [(c.text, c.heading_path, c.char_start, c.char_end) for c in chunks] == [
        ("Mei Chen owns Harbor.", ("Heading 0",), 0, 21),
        ("Priya Raman leads Perception.", ("Heading 1",), 23, 52),
    ]


def test_whitespace_only_sections_give_no_chunks() -> None:
    assert chunk(document("  \n\n ", "Text")) == [Chunk(0, "Text", ("Heading 1",), None, 7, 11)]


# --- where chunks are cut -----------------------------------------------------------------------


def words(rng: random.Random, count: int) -> str:
    return " ".join(
        rng.choice(["tern", "harbor", "fleet", "robot", "aisle", "charger", "pallet"]) for _ in range(count)
    )


def test_cuts_fall_between_paragraphs_when_there_are_some() -> None:
    rng = random.Random(1)
    paragraphs = [words(rng, 30) + "." for _ in range(8)]
    doc = document("\n\n".join(paragraphs))

    chunks = chunk(doc, max_chars=500, overlap_chars=0)

    assert len(chunks) > 1
    for c in chunks:
        assert all(paragraph in paragraphs for paragraph in c.text.split("\n\n")), c.text


def test_cuts_fall_after_sentences_before_falling_between_words() -> None:
    rng = random.Random(2)
    text = " ".join(words(rng, rng.randint(4, 12)).capitalize() + "." for _ in range(40))

    chunks = chunk(document(text), max_chars=300, overlap_chars=0)

    assert len(chunks) > 3
    assert all(c.text.endswith(".") for c in chunks)
    assert all(c.text[0].isupper() for c in chunks)


def test_consecutive_chunks_overlap_at_a_word_boundary() -> None:
    text = words(random.Random(3), 400)

    chunks = chunk(document(text), max_chars=400, overlap_chars=60)

    assert len(chunks) > 3
    for previous, current in zip(chunks, chunks[1:], strict=False):
        shared = overlap(previous, current)
        assert 40 <= shared <= 60  # about overlap_chars: the words that start within it
        assert previous.text.endswith(current.text[:shared])
        assert text[current.char_start - 1] == " "


def test_a_single_very_long_word_is_cut_at_max_chars_without_overlap() -> None:
    token = "x" * 2500

    chunks = chunk(document(token), max_chars=1000, overlap_chars=100)

    assert [len(c.text) for c in chunks] == [1000, 1000, 500]
    assert "".join(c.text for c in chunks) == token


def test_a_long_line_without_spaces_among_words_still_chunks() -> None:
    url = "https://northwind.example/" + "a1b2c3" * 300
    text = f"The runbook lives at {url} and Luis Ortega owns it."

    chunks = chunk(document(text), max_chars=500, overlap_chars=50)

    assert_invariants(document(text), chunks, 500, 50)
    # No break in the second half of the window: the cut goes through the URL at max_chars.
    assert [len(c.text) for c in chunks[:-1]] == [500] * (len(chunks) - 1)
    assert chunks[-1].text.endswith("and Luis Ortega owns it.")


def test_tiny_documents_give_one_chunk_with_default_arguments() -> None:
    doc = parse(b"Dana prefers RFCs over meetings.", filename="note.txt", content_type=None)

    assert chunk(doc) == [Chunk(0, "Dana prefers RFCs over meetings.", (), None, 0, 32)]
    assert DEFAULT_MAX_CHARS == 1200


def test_chunking_is_deterministic() -> None:
    doc = parsed_sample("team-handbook.md")

    assert chunk(doc, max_chars=150, overlap_chars=30) == chunk(doc, max_chars=150, overlap_chars=30)


@pytest.mark.parametrize(
    ("max_chars", "overlap_chars"),
    [(0, 0), (-5, 0), (100, -1), (100, 100), (100, 150)],
)
def test_invalid_arguments_are_refused(max_chars: int, overlap_chars: int) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        chunk(document("text"), max_chars=max_chars, overlap_chars=overlap_chars)


# --- property-style: random documents -----------------------------------------------------------

ALPHABET = "abcdefghijklmnopqrstuvwxyzéßø中"


def random_word(rng: random.Random) -> str:
    if rng.random() < 0.01:
        return "".join(rng.choices(ALPHABET, k=rng.randint(30, 1500)))  # a URL, a hash
    return "".join(rng.choices(ALPHABET, k=rng.randint(1, 12)))


def random_section(rng: random.Random, number: int) -> Section:
    paragraphs = []
    for _ in range(rng.randint(0, 8)):
        sentences = [
            " ".join(random_word(rng) for _ in range(rng.randint(1, 20)))
            + rng.choice([".", "!", "?", ";", ""])
            for _ in range(rng.randint(1, 10))
        ]
        paragraphs.append(rng.choice([" ", " ", "\n", "  "]).join(sentences))
    text = rng.choice(["\n\n", "\n\n", "\n \n", "\n"]).join(paragraphs)
    if rng.random() < 0.2:
        text = f"  {text}\n "  # sections built by hand may not be stripped
    return Section((f"H{number}",), text, page=rng.choice([None, number + 1]))


def test_random_documents_keep_every_invariant() -> None:
    rng = random.Random(20250314)
    for _ in range(200):
        doc = ParsedDocument(
            DocumentKind.TEXT, None, [random_section(rng, n) for n in range(rng.randint(1, 4))]
        )
        max_chars = rng.choice([rng.randint(1, 40), rng.randint(40, 400), rng.randint(400, 3000)])
        overlap_chars = rng.choice([0, rng.randint(0, max_chars - 1), rng.randint(0, max(0, max_chars // 4))])

        chunks = chunk(doc, max_chars=max_chars, overlap_chars=overlap_chars)

        assert_invariants(doc, chunks, max_chars, overlap_chars)
        assert chunks == chunk(doc, max_chars=max_chars, overlap_chars=overlap_chars)


def test_random_documents_whitespace_normalised_text_survives_chunking() -> None:
    """From the chunks alone (no original text): dropping overlaps keeps every word, in order."""
    rng = random.Random(7)
    for _ in range(100):
        doc = ParsedDocument(DocumentKind.TEXT, None, [random_section(rng, 0)])
        chunks = chunk(doc, max_chars=rng.randint(50, 600), overlap_chars=rng.randint(0, 49))
        pieces = []
        previous_end = None
        for c in chunks:
            shared = 0 if previous_end is None else max(0, previous_end - c.char_start)
            glue = "" if shared or previous_end == c.char_start else " "  # no gap: a cut inside a word
            pieces.append(glue + c.text[shared:])
            previous_end = c.char_end
        assert re.split(r"\s+", "".join(pieces).strip()) == re.split(r"\s+", doc.sections[0].text.strip())
