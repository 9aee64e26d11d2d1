"""Plain-text helpers shared by the extractive provider and the offline extractor."""

from __future__ import annotations

import re

__all__ = ["STOPWORDS", "content_words", "list_items", "split_sentences"]

# Abbreviations whose period does not end a sentence ("Dr. Lee", "e.g. Paris")...
_ABBREVIATIONS = frozenset("mr mrs ms dr prof st jr sr vs e.g i.e no fig approx dept est".split())
# ...and those that end one only when a sentence opener follows ("Acme Inc. hired" / "Inc. She").
_COMPANY_ABBREVIATIONS = frozenset("inc ltd corp co etc".split())
_SENTENCE_END = re.compile(r"(?<=[.!?])(?P<close>[\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+(?P<item>\S.*?)\s*$")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just let me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    please tell write give summarise summarize""".split()
)


def split_sentences(text: str) -> list[str]:
    """Sentences in order: split after `.`/`!`/`?` before a capital or digit, and at line breaks
    (list items and headings are sentences of their own)."""
    sentences: list[str] = []
    for line in text.splitlines():
        item = _LIST_ITEM.match(line)
        line = (item["item"] if item else line).strip()
        if not line:
            continue
        start = 0
        for match in _SENTENCE_END.finditer(line):
            head = line[start : match.start() + len(match["close"])].strip()
            bare = head.rstrip("\"')]")
            last_word = bare.rsplit(None, 1)[-1].rstrip(".").lower() if bare else ""
            next_word = line[match.end() :].split(None, 1)[0].strip("\"'([").lower()
            if (
                last_word in _ABBREVIATIONS
                or (len(last_word) == 1 and last_word.isalpha())
                or (last_word in _COMPANY_ABBREVIATIONS and next_word not in STOPWORDS)
            ):
                continue
            sentences.append(head)
            start = match.end()
        tail = line[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def content_words(text: str) -> list[str]:
    """Lower-cased words that carry meaning (no stopwords, no one-letter words)."""
    return [w for w in (m.lower() for m in _WORD.findall(text)) if len(w) > 1 and w not in STOPWORDS]


def list_items(text: str) -> list[str]:
    """The items of bulleted or numbered lists in `text`, in order."""
    return [m["item"] for m in (_LIST_ITEM.match(line) for line in text.splitlines()) if m]
