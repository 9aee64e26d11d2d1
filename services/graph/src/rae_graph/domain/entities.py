"""Entity resolution: when two mentions name one entity, without running up a bill.

Cheapest evidence first: a normalised name or alias shared with a node of a compatible type; then
embedding similarity of the names; what stays ambiguous (two nodes about as similar) goes to an
LLM judge when one is configured (GRAPH_JUDGE_MODEL), and is not merged otherwise, so a wrong merge
never happens silently.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "JUDGE_SCHEMA",
    "Candidate",
    "Contender",
    "Similar",
    "compatible",
    "cosine",
    "entity_keys",
    "normalise",
    "judge_messages",
    "judged_match",
    "pick_similar",
]

# "The Acme Corp." and "acme corp" are one name; legal suffixes are kept, "Acme" alone may be
# another company.
_PUNCTUATION = re.compile(r"[^\w\s@&+.-]|\.(?!\w)")
_LEADING_THE = re.compile(r"^the\s+")
# A type that says nothing about the entity: it may resolve onto a node of any type.
VAGUE_TYPE = "concept"


def normalise(name: str) -> str:
    """The key names are compared by: case, accents, punctuation and spacing folded."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = " ".join(_PUNCTUATION.sub(" ", folded).split())
    return _LEADING_THE.sub("", folded)


def entity_keys(name: str, aliases: Iterable[str]) -> list[str]:
    keys = [normalise(name), *(normalise(a) for a in aliases)]
    return [k for k in dict.fromkeys(keys) if k]


def compatible(type_a: str, type_b: str) -> bool:
    return type_a == type_b or VAGUE_TYPE in (type_a, type_b)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    type: str
    embedding: Sequence[float]


@dataclass(frozen=True, slots=True)
class Similar:
    """The outcome for one mention: the node it is (`match`), or none; `ambiguous` when several
    nodes were similar enough and too close to each other to choose."""

    match: str | None
    score: float
    ambiguous: bool = False
    # When ambiguous: the nodes too close to tell apart, most similar first.
    contenders: tuple[str, ...] = ()


def pick_similar(
    vector: Sequence[float],
    entity_type: str,
    candidates: Iterable[Candidate],
    *,
    threshold: float,
    margin: float,
) -> Similar:
    """The most similar compatible candidate at or above `threshold`, unless the runner-up is within
    `margin` of it (ambiguous: left for a judge that can read the context, not merged here)."""
    scored = sorted(
        (
            (cosine(vector, c.embedding), c.id)
            for c in candidates
            if c.embedding and compatible(entity_type, c.type)
        ),
        reverse=True,
    )
    above = [(score, node_id) for score, node_id in scored if score >= threshold]
    if not above:
        return Similar(None, scored[0][0] if scored else 0.0)
    if len(above) > 1 and above[0][0] - above[1][0] < margin:
        close = tuple(node_id for score, node_id in above if above[0][0] - score < margin)
        return Similar(None, above[0][0], ambiguous=True, contenders=close)
    return Similar(above[0][1], above[0][0])


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    type: str
    aliases: Sequence[str]


# The judge answers the index of the contender the mention is, or null for none of them.
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"match": {"type": ["integer", "null"], "minimum": 0}},
    "required": ["match"],
    "additionalProperties": False,
}


def judge_messages(
    mention: str, mention_type: str, context: str, contenders: Sequence[Contender]
) -> list[dict[str, str]]:
    """The question put to an LLM about one ambiguous mention, with the text it came from."""
    listed = "\n".join(
        f"{n}: {c.name} ({c.type}" + (f"; also called {', '.join(c.aliases)}" if c.aliases else "") + ")"
        for n, c in enumerate(contenders)
    )
    return [
        {
            "role": "system",
            "content": "You resolve entity mentions in a knowledge graph. Answer with the number of the "
            "known entity the mention refers to, or null when it is none of them or you cannot tell.",
        },
        {
            "role": "user",
            "content": f"Text: {context[:2000]}\n\nMention: {mention} ({mention_type})\n\n"
            f"Known entities:\n{listed}",
        },
    ]


def judged_match(output: object, contenders: Sequence[str]) -> str | None:
    """The node the judge chose, or None for no choice or an answer out of range."""
    if not isinstance(output, dict):
        return None
    index = output.get("match")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(contenders):
        return None
    return contenders[index]
