"""Parsing the sample documents and the edge cases users upload: structure kept, errors classified."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import docx
import pypdf
import pytest
from docx.document import Document as DocxDocument
from docx.enum.style import WD_STYLE_TYPE

from rae_memory.ingest import (
    CorruptDocument,
    DocumentKind,
    EmptyDocument,
    ParsedDocument,
    Section,
    UnsupportedDocumentType,
    parse,
    parsers,
)

SAMPLES = Path(__file__).resolve().parents[4] / "samples"
TITLE = "Northwind Robotics Team Handbook"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def section_under(doc: ParsedDocument, *path: str) -> Section:
    matching = [section for section in doc.sections if section.heading_path == path]
    assert len(matching) == 1, [section.heading_path for section in doc.sections]
    return matching[0]


def docx_bytes(document: DocxDocument) -> bytes:
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pdf_bytes(writer: pypdf.PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def no_blank_sections(doc: ParsedDocument) -> bool:
    return all(section.text and section.text == section.text.strip() for section in doc.sections)


# --- the samples --------------------------------------------------------------------------------


def test_markdown_sample_keeps_atx_and_setext_headings() -> None:
    doc = parse(sample("team-handbook.md"), filename="team-handbook.md", content_type=None)

    assert doc.kind is DocumentKind.MARKDOWN
    assert doc.title == TITLE  # from the front matter
    assert "updated: 2025-03-01" not in doc.text
    assert "Priya Raman** leads the Perception team" in section_under(doc, TITLE, "Who owns what").text
    assert "09:30 CET" in section_under(doc, TITLE, "How we work", "Meetings").text
    assert "27 days of paid leave" in section_under(doc, TITLE, "Time off").text  # a setext heading
    assert "17 June 2025" in section_under(doc, TITLE, "How we work", "Releases").text
    assert all(section.page is None for section in doc.sections)
    assert no_blank_sections(doc)


def test_markdown_hash_lines_in_code_fences_are_not_headings() -> None:
    doc = parse(sample("team-handbook.md"), filename="team-handbook.md", content_type=None)

    review = section_under(doc, TITLE, "How we work", "Code review").text
    assert "# The release branch name is never pushed to directly:" in review
    assert not any("release branch" in heading for s in doc.sections for heading in s.heading_path)


def test_html_sample_keeps_headings_lists_and_tables_and_drops_chrome() -> None:
    doc = parse(sample("product-faq.html"), filename="product-faq.html", content_type="text/html")

    assert doc.kind is DocumentKind.HTML
    assert doc.title == "Tern & Harbor: Product FAQ | Northwind Robotics"
    carry = section_under(doc, "Product FAQ", "Tern robot", "How much can Tern carry?").text
    assert carry.startswith("Tern carries up to 600 kg on its lift deck")
    assert "\n" not in carry  # source line breaks inside a paragraph are spaces
    standards = section_under(doc, "Product FAQ", "Tern robot", "Which safety standards does Tern meet?")
    assert standards.text.splitlines() == [
        "- ISO 3691-4 for driverless industrial trucks",
        "- EN 62061 for the safety controller, designed by the Motion Control team",
        "- CE marking for sale in the European Union",
    ]
    plans = section_under(doc, "Product FAQ", "Plans and support").text
    assert "Plan | Price per robot | Support\nStarter | EUR 1,100 / month" in plans
    assert "needs at least ten robots.\nQuestions about an order" in plans  # <br>
    for chrome in ("window.analytics", "font-family", "Careers", "All rights reserved"):
        assert chrome not in doc.text


def test_text_sample_is_one_section_of_paragraphs() -> None:
    doc = parse(sample("meeting-notes.txt"), filename="meeting-notes.txt", content_type="text/plain")

    assert doc.kind is DocumentKind.TEXT
    assert doc.title is None
    assert len(doc.sections) == 1
    (section,) = doc.sections
    assert section.heading_path == () and section.page is None
    assert section.text.startswith("Architecture sync - 12 March 2025")
    assert "\n\nDecision: move telemetry metadata to PostgreSQL." in section.text
    assert "Tomás Okafor" in section.text


def test_pdf_sample_gives_a_section_per_page() -> None:
    doc = parse(sample("architecture-overview.pdf"), filename="architecture-overview.pdf", content_type=None)

    assert doc.kind is DocumentKind.PDF
    assert doc.title == "Northwind Robotics Architecture Overview"
    assert [section.page for section in doc.sections] == [1, 2, 3]
    assert all(section.heading_path == () for section in doc.sections)
    assert doc.sections[0].text.startswith("1. System overview")
    assert "from MongoDB to\nPostgreSQL with the pgvector extension" in doc.sections[1].text
    assert "Luis Ortega owns the on-call rotation" in doc.sections[2].text


def test_docx_sample_keeps_title_headings_lists_and_tables() -> None:
    doc = parse(sample("onboarding-guide.docx"), filename="onboarding-guide.docx", content_type=None)

    assert doc.kind is DocumentKind.DOCX
    assert doc.title == "Onboarding Guide"
    assert doc.sections[0].heading_path == ("Onboarding Guide",)  # the Title style is the outermost
    day_one = section_under(doc, "Onboarding Guide", "Your first week", "Day one").text
    assert day_one.endswith(
        "- Collect your access badge from reception.\n"
        "- Set up two-factor authentication for email and the Git server.\n"
        "- Join the #ask-northwind and #announcements channels."
    )
    buddies = section_under(doc, "Onboarding Guide", "Your buddy", "Buddy pairs").text
    assert buddies.splitlines()[1] == "Perception | Fleet platform | Mei Chen"
    assert "Luis Ortega" in section_under(doc, "Onboarding Guide", "Who to ask").text
    assert no_blank_sections(doc)


# --- markdown -----------------------------------------------------------------------------------


def test_markdown_heading_levels_pop_to_the_right_parent() -> None:
    text = "# A\n\na\n\n### A.1.1\n\nb\n\n## A.2 ##\n\nc\n\n# *B* and `code`\n\nd\n"

    doc = parse(text.encode(), filename="x.md", content_type=None)

    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("A",), "a"),
        (("A", "A.1.1"), "b"),
        (("A", "A.2"), "c"),
        (("B and code",), "d"),
    ]
    assert doc.title == "A"


def test_markdown_quoted_heading_and_text_before_the_first_heading_stay_body_text() -> None:
    text = "Intro line.\n\n> # Not a section\n\n# Real\n\nbody"

    doc = parse(text.encode(), filename="x.markdown", content_type=None)

    assert [(s.heading_path, s.text) for s in doc.sections] == [
        ((), "Intro line.\n\n> # Not a section"),
        (("Real",), "body"),
    ]


def test_markdown_heading_without_body_gives_no_empty_section() -> None:
    doc = parse(b"# Top\n## Empty\n## Full\ntext\n", filename="x.md", content_type=None)

    assert [(s.heading_path, s.text) for s in doc.sections] == [(("Top", "Full"), "text")]


# --- html ---------------------------------------------------------------------------------------


def test_html_nested_lists_ordered_lists_and_inline_markup() -> None:
    html = (
        "<h2>Steps</h2><ol><li>Open <b>Harbor</b>, then <a href='#'>log in</a></li>"
        "<li>Pick a site<ul><li>Rotterdam</li><li>Tilburg</li></ul></li></ol>"
    )

    doc = parse(html.encode(), filename=None, content_type="text/html; charset=utf-8")

    assert doc.sections == [
        Section(("Steps",), "1. Open Harbor, then log in\n2. Pick a site\n  - Rotterdam\n  - Tilburg")
    ]


def test_html_text_that_looks_like_a_file_name_or_xml_parses_without_warnings() -> None:
    # BeautifulSoup warns about both; pytest turns warnings into errors, so these would fail.
    assert parse(b"index.html", filename="a.html", content_type=None).text == "index.html"
    xml = b'<?xml version="1.0"?><note><to>Mei</to><body>Ship Tern 2.0</body></note>'
    assert parse(xml, filename="a.html", content_type=None).text == "Mei\n\nShip Tern 2.0"


def test_html_charset_from_meta_tag() -> None:
    html = '<meta charset="windows-1252"><p>Caf\u00e9 \u201cNorthwind\u201d</p>'.encode("cp1252")

    assert parse(html, filename="a.htm", content_type=None).text == "Caf\u00e9 \u201cNorthwind\u201d"


def test_html_with_only_scripts_and_navigation_is_empty() -> None:
    html = b"<html><head><title>T</title></head><body><nav>Home</nav><script>x()</script></body></html>"

    with pytest.raises(EmptyDocument):
        parse(html, filename="a.html", content_type=None)


# --- text decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("\ufeffCaf\u00e9 Tern".encode(), None),
        ("Caf\u00e9 Tern".encode("utf-16"), None),  # with its BOM
        ("Caf\u00e9 Tern".encode("latin-1"), None),  # no valid UTF-8: read as Windows-1252
        ("Caf\u00e9 Tern".encode("cp1252"), "text/plain; charset=windows-1252"),
        ("Caf\u00e9 Tern".encode("iso-8859-15"), 'text/plain; charset="ISO-8859-15"'),
    ],
)
def test_text_encodings(data: bytes, content_type: str | None) -> None:
    assert parse(data, filename="a.txt", content_type=content_type).text == "Caf\u00e9 Tern"


def test_invalid_utf8_in_text_is_replaced_not_refused() -> None:
    data = "Priya Raman \u2014 Perception lead, M\u00fcnchen".encode() + b"\xff\xfe broken"

    doc = parse(data, filename="a.md", content_type="text/markdown; charset=utf-8")

    assert doc.text == "Priya Raman \u2014 Perception lead, M\u00fcnchen\ufffd\ufffd broken"


def test_a_stray_nul_byte_does_not_make_a_text_file_binary() -> None:
    data = b"Owner: Mei Chen\x00\nTeam: Harbor\n"

    assert parse(data, filename="owners.txt", content_type=None).text == "Owner: Mei Chen\nTeam: Harbor"


def test_text_line_endings_and_control_characters_are_normalised() -> None:
    data = b"First line  \r\nsecond\x07 line\r\n\r\n\r\n\r\nnext\x0cpage\r"

    assert parse(data, filename="a.txt", content_type=None).text == "First line\nsecond line\n\nnext\npage"


# --- docx ---------------------------------------------------------------------------------------


def test_docx_custom_style_based_on_a_heading_is_a_heading() -> None:
    document = docx.Document()
    question = document.styles.add_style("FAQ Question", WD_STYLE_TYPE.PARAGRAPH)
    question.base_style = document.styles["Heading 2"]
    document.add_heading("FAQ", level=1)
    document.add_paragraph("How fast is Tern?", style="FAQ Question")
    document.add_paragraph("2 m/s in shared aisles.")

    doc = parse(docx_bytes(document), filename="faq.docx", content_type=None)

    assert doc.sections == [Section(("FAQ", "How fast is Tern?"), "2 m/s in shared aisles.")]
    assert doc.title == "FAQ"


def test_docx_without_text_is_empty() -> None:
    document = docx.Document()
    document.add_paragraph("   ")

    with pytest.raises(EmptyDocument):
        parse(docx_bytes(document), filename="blank.docx", content_type=None)


# --- pdf ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_pdf_encrypted_with_an_empty_user_password_is_read(algorithm: str) -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(sample("architecture-overview.pdf"))))
    writer.encrypt(user_password="", owner_password="owner", algorithm=algorithm)

    doc = parse(pdf_bytes(writer), filename="a.pdf", content_type=None)

    assert [section.page for section in doc.sections] == [1, 2, 3]


def test_pdf_that_needs_a_password_is_refused_as_corrupt() -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(sample("architecture-overview.pdf"))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")

    with pytest.raises(CorruptDocument, match="password"):
        parse(pdf_bytes(writer), filename="a.pdf", content_type=None)


def test_pdf_without_text_is_empty() -> None:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=595, height=842)

    with pytest.raises(EmptyDocument, match="OCR"):
        parse(pdf_bytes(writer), filename="scan.pdf", content_type="application/pdf")


# --- errors -------------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(64)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        (PNG, "diagram.png", "image/png"),
        (PNG, None, None),
        (PNG, "notes.txt", "text/plain"),  # binary content is not text, whatever the label
        (EXE, "setup.exe", "application/octet-stream"),
        (b"name,owner\nHarbor,Mei Chen\n", "owners.csv", "text/csv"),
        (b"Plain words", None, "image/png"),
        (zip_bytes({"a.txt": b"hello"}), "archive.zip", "application/zip"),
        (zip_bytes({"xl/workbook.xml": b"<workbook/>"}), None, None),
    ],
)
def test_unsupported_types(data: bytes, filename: str | None, content_type: str | None) -> None:
    with pytest.raises(UnsupportedDocumentType) as raised:
        parse(data, filename=filename, content_type=content_type)

    assert raised.value.slug == "unsupported-document-type"
    assert ".pdf" in raised.value.message  # tells the user what is supported


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"", "a.txt"),
        (b"  \n\t \r\n", "a.md"),
        (b"", "a.pdf"),
        (b"\n\n", None),
        ("\ufeff  ".encode(), "a.html"),
    ],
)
def test_empty_documents(data: bytes, filename: str | None) -> None:
    with pytest.raises(EmptyDocument) as raised:
        parse(data, filename=filename, content_type=None)

    assert raised.value.slug == "empty-document"


def test_truncated_pdf_is_corrupt() -> None:
    data = sample("architecture-overview.pdf")

    with pytest.raises(CorruptDocument) as raised:
        parse(data[: len(data) // 2], filename="architecture-overview.pdf", content_type="application/pdf")

    assert raised.value.slug == "corrupt-document"


def test_random_bytes_named_docx_are_corrupt() -> None:
    data = random.Random(7).randbytes(4096)

    with pytest.raises(CorruptDocument):
        parse(data, filename="report.docx", content_type=None)


def test_zip_without_word_document_claimed_as_docx_is_corrupt() -> None:
    data = zip_bytes({"[Content_Types].xml": b"<Types/>", "word/styles.xml": b"<styles/>"})

    with pytest.raises(CorruptDocument, match="word/document.xml"):
        parse(data, filename="report.docx", content_type=None)


def test_truncated_docx_is_corrupt() -> None:
    data = sample("onboarding-guide.docx")

    with pytest.raises(CorruptDocument):
        parse(data[: len(data) // 2], filename="onboarding-guide.docx", content_type=None)


def test_docx_with_broken_xml_is_corrupt() -> None:
    with zipfile.ZipFile(io.BytesIO(sample("onboarding-guide.docx"))) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    members["word/document.xml"] = members["word/document.xml"][:500]

    with pytest.raises(CorruptDocument):
        parse(zip_bytes(members), filename="onboarding-guide.docx", content_type=None)


def test_html_nested_too_deeply_is_refused_not_crashing() -> None:
    html = "<div>" * 5000 + "deep" + "</div>" * 5000

    with pytest.raises(CorruptDocument, match="nested too deeply"):
        parse(html.encode(), filename="deep.html", content_type=None)


def test_docx_that_unpacks_too_large_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsers, "MAX_DOCX_UNCOMPRESSED_BYTES", 10_000)

    with pytest.raises(CorruptDocument, match="unpacks to more than"):
        parse(sample("onboarding-guide.docx"), filename="onboarding-guide.docx", content_type=None)
