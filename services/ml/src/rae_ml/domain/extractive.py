"""The offline `local` provider: answers by selecting the most salient sentences of the input.

Deterministic and network-free. Salience is term frequency: a sentence scores the summed
frequency (over all system and user messages) of its distinct content words, damped by its
length, with a bonus for opening sentences and for the last user message (usually the actual
request). The best sentences are kept in their original order within `max_tokens`.
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rae_common.contracts.ml import LOCAL_NOTICE
from rae_ml.domain.generation import ChatCall, Completion, UnsupportedSchema
from rae_ml.domain.schemas import validation_error
from rae_ml.domain.text import content_words, list_items, split_sentences

__all__ = ["TokenCounter", "build_value", "extractive_completion", "rank_sentences"]

MAX_SENTENCES = 5
MAX_ARRAY_ITEMS = 5
_MAX_DEPTH = 12


class TokenCounter(Protocol):
    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text (no special tokens, no truncation)."""
        ...


@dataclass(frozen=True, slots=True)
class _Sentence:
    text: str
    position: int
    score: float


def _source_texts(call: ChatCall) -> list[str]:
    return [m.content for m in call.messages if m.role in ("system", "user")]


def rank_sentences(call: ChatCall) -> list[_Sentence]:
    """Sentences of the system and user messages, most salient first (ties: earlier first),
    each distinct sentence once."""
    texts = _source_texts(call)
    last_user = max((i for i, m in enumerate(call.messages) if m.role == "user"), default=-1)
    frequency: Counter[str] = Counter()
    for text in texts:
        frequency.update(content_words(text))
    found: list[_Sentence] = []
    seen: set[str] = set()
    for index, message in enumerate(call.messages):
        if message.role not in ("system", "user"):
            continue
        for n, sentence in enumerate(split_sentences(message.content)):
            key = " ".join(sentence.lower().split())
            if key in seen:
                continue
            seen.add(key)
            distinct = set(content_words(sentence))
            score = sum(frequency[w] for w in distinct) / math.sqrt(len(distinct) + 1)
            if n == 0:
                score *= 1.2
            if index == last_user:
                score *= 1.5
            found.append(_Sentence(sentence, len(found), score))
    return sorted(found, key=lambda s: (-s.score, s.position))


def _fit_words(text: str, budget: int, counter: TokenCounter) -> str:
    """The longest prefix of whole words of `text` within `budget` tokens (binary search)."""
    words = text.split()
    low, high = 0, len(words)
    while low < high:
        middle = (low + high + 1) // 2
        if counter.count([" ".join(words[:middle])])[0] <= budget:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])


def _select(ranked: list[_Sentence], max_tokens: int, counter: TokenCounter) -> tuple[str, bool]:
    """The chosen sentences in input order, and whether `max_tokens` cut the answer short."""
    if not ranked:
        return "", False
    wanted = ranked[: max(1, min(MAX_SENTENCES, math.ceil(len(ranked) / 3)))]
    costs = counter.count([s.text for s in wanted])
    chosen: list[_Sentence] = []
    used = 0
    truncated = False
    for sentence, cost in zip(wanted, costs, strict=True):
        if used + cost <= max_tokens:
            chosen.append(sentence)
            used += cost
        else:
            truncated = True
    if not chosen:
        first = wanted[0]
        return _fit_words(first.text, max_tokens, counter), True
    return " ".join(s.text for s in sorted(chosen, key=lambda s: s.position)), truncated


def extractive_completion(call: ChatCall, counter: TokenCounter) -> Completion:
    """Raises UnsupportedSchema when a `json_schema` asks for what no selection can satisfy."""
    ranked = rank_sentences(call)
    if call.json_schema is None:
        content, truncated = _select(ranked, call.max_tokens, counter)
    else:
        value = build_value(call.json_schema, _Supply(ranked, call))
        truncated = _shrink_strings(value, call.max_tokens, counter)
        error = validation_error(call.json_schema, value)
        if error is not None:
            raise UnsupportedSchema(f"the offline provider cannot produce a value for this schema: {error}")
        content = json.dumps(value, ensure_ascii=False)
    prompt, completion = _counts(counter, [m.content for m in call.messages], content)
    return Completion(
        content=content,
        finish_reason="length" if truncated else "stop",
        prompt_tokens=prompt,
        completion_tokens=completion,
        notice=LOCAL_NOTICE,
    )


def _counts(counter: TokenCounter, prompt_texts: list[str], content: str) -> tuple[int, int]:
    counts = counter.count([*prompt_texts, content])
    return sum(counts[:-1]), counts[-1]


# --- structured output -----------------------------------------------------------------------


class _Supply:
    """Text for the strings of a structured value: salient sentences in rank order (cycling),
    and the input's list items for arrays of strings."""

    def __init__(self, ranked: list[_Sentence], call: ChatCall) -> None:
        self._sentences = [s.text for s in ranked] or [""]
        self._next = 0
        items = [item for text in _source_texts(call) for item in list_items(text)]
        self.items = items or [s.text for s in ranked]

    def sentence(self) -> str:
        text = self._sentences[self._next % len(self._sentences)]
        self._next += 1
        return text


def build_value(schema: Any, supply: _Supply, root: Any = None, depth: int = 0) -> Any:
    """A value for `schema` made of the input's text: strings from sentences, arrays of strings
    from lists, numbers and booleans from the schema's defaults (else its minimum, 0, false)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        return build_value(_resolve_ref(root, schema["$ref"]), supply, root, depth + 1)
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    if schema.get("enum"):
        return copy.deepcopy(schema["enum"][0])
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [o for o in schema[key] if not (isinstance(o, dict) and o.get("type") == "null")]
            return build_value((options or schema[key])[0], supply, root, depth + 1)
    if schema.get("allOf"):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged = _merge(merged, part)
        return build_value(merged, supply, root, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: build_value(sub, supply, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return _build_array(schema, supply, root, depth)
    if kind == "string":
        return _build_string(schema, supply)
    if kind in ("integer", "number"):
        return _build_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None


def _type_of(schema: dict[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        real = [t for t in declared if t != "null"]
        return str(real[0]) if real else "null"
    if isinstance(declared, str):
        return declared
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _resolve_ref(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        raise UnsupportedSchema(f"the offline provider resolves only local references, not {ref!r}")
    node = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise UnsupportedSchema(f"reference {ref!r} does not resolve")
    return node


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if "required" in base and "required" in extra:
        merged["required"] = [*base["required"], *extra["required"]]
    return merged


def _build_array(schema: dict[str, Any], supply: _Supply, root: Any, depth: int) -> list[Any]:
    prefix = [build_value(s, supply, root, depth + 1) for s in schema.get("prefixItems") or []]
    items = schema.get("items")
    low = int(schema.get("minItems", 0))
    high = int(schema.get("maxItems", MAX_ARRAY_ITEMS))
    if not isinstance(items, dict):
        return prefix
    resolved = _resolve_ref(root, items["$ref"]) if "$ref" in items else items
    if isinstance(resolved, dict) and _type_of(resolved) == "string" and not _constrained(resolved):
        texts = supply.items[: max(0, high - len(prefix))]
        while len(prefix) + len(texts) < low:
            texts.append(supply.sentence())
        return [*prefix, *(_build_string(resolved, supply, text) for text in texts)]
    count = max(low - len(prefix), min(1, high - len(prefix)))
    return [*prefix, *(build_value(items, supply, root, depth + 1) for _ in range(count))]


def _constrained(schema: dict[str, Any]) -> bool:
    return any(k in schema for k in ("enum", "const", "default", "pattern"))


def _build_string(schema: dict[str, Any], supply: _Supply, text: str | None = None) -> str:
    value = supply.sentence() if text is None else text
    longest = schema.get("maxLength")
    shortest = int(schema.get("minLength", 0))
    while len(value) < shortest:
        value = f"{value} {supply.sentence()}".strip() or "-" * shortest
    if isinstance(longest, int) and len(value) > longest:
        cut = value[:longest]
        value = cut.rsplit(" ", 1)[0] if " " in cut and len(cut.rsplit(" ", 1)[0]) >= shortest else cut
    return value


def _build_number(schema: dict[str, Any], *, integer: bool) -> float | int:
    value: float = 0
    if "minimum" in schema:
        value = schema["minimum"]
    elif "exclusiveMinimum" in schema:
        value = schema["exclusiveMinimum"] + (1 if integer else 0.5)
    elif "maximum" in schema and schema["maximum"] < 0:
        value = schema["maximum"]
    elif "exclusiveMaximum" in schema and schema["exclusiveMaximum"] <= 0:
        value = schema["exclusiveMaximum"] - 1
    return math.ceil(value) if integer else value


def _string_slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every string inside `value`."""
    if isinstance(value, dict):
        items: Iterator[tuple[Any, Any]] = iter(value.items())
    elif isinstance(value, list):
        items = iter(enumerate(value))
    else:
        return
    for key, item in items:
        if isinstance(item, str):
            yield value, key
        else:
            yield from _string_slots(item)


def _shrink_strings(value: Any, max_tokens: int, counter: TokenCounter) -> bool:
    """Halve the longest string of `value` (in place) until its JSON fits `max_tokens`; True when
    anything was cut."""
    cut = False
    while counter.count([json.dumps(value, ensure_ascii=False)])[0] > max_tokens:
        slots = [(c, k) for c, k in _string_slots(value) if len(c[k].split()) > 1]
        if not slots:
            break
        container, key = max(slots, key=lambda slot: len(slot[0][slot[1]]))
        words = container[key].split()
        container[key] = " ".join(words[: len(words) // 2])
        cut = True
    return cut
