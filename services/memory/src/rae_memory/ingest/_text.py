"""Bytes to clean text: encoding detection and whitespace normalisation shared by the parsers."""

from __future__ import annotations

import re
import unicodedata

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 LE starts with the UTF-16 LE mark, so it is tried first.
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)

# C0 controls other than tab and newline, DEL and C1 controls: noise from PDFs and legacy encodings.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\f\v\u2028\u2029\x85]")
_BLANK_LINES = re.compile(r"\n{3,}")

_SNIFF_BYTES = 8192
# A few stray control characters (a bell, a form feed) do not make a short note binary.
_TEXT_STRAY_CONTROLS = 2
_TEXT_CONTROL_RATIO = 0.02


def has_bom(data: bytes) -> bool:
    return any(data.startswith(bom) for bom, _ in _BOMS)


def looks_like_text(data: bytes) -> bool:
    """True unless the first bytes hold more than a few control characters (NUL included)."""
    if has_bom(data):
        return True
    sample = data[:_SNIFF_BYTES]
    controls = sum(1 for byte in sample if (byte < 0x20 and byte not in b"\t\n\r\f\v\x1b") or byte == 0x7F)
    return controls <= _TEXT_STRAY_CONTROLS + len(sample) * _TEXT_CONTROL_RATIO


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Decode never failing: BOM, then the declared charset, then UTF-8, then Windows-1252.

    Invalid bytes become U+FFFD. Bytes that are mostly valid UTF-8 with a few broken sequences stay
    UTF-8 (with replacements); bytes with no valid multi-byte sequence are a legacy single-byte
    encoding, read as Windows-1252 (a superset of the printable Latin-1 range).
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    if charset:
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            pass  # an unknown or non-text codec name: detect instead
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lenient = data.decode("utf-8", errors="replace")
    invalid = lenient.count("\ufffd") - data.count("\ufffd".encode())
    valid_multibyte = sum(1 for ch in lenient if ord(ch) > 0x7F) - lenient.count("\ufffd")
    if valid_multibyte > invalid:
        return lenient
    return data.decode("cp1252", errors="replace")


def normalise_text(text: str) -> str:
    """NFC, `\\n` line breaks, no control characters, no trailing spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()
