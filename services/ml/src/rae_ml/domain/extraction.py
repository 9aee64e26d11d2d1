"""Entities and relations from text: the offline heuristic extractor, and the JSON schema and
clean-up of an LLM's extraction.

The offline extractor is deterministic and knows English only. It finds emails, dates,
capitalised names and a fixed set of relation patterns ("X works at Y", "X lives in Y",
"X prefers Y", "X manages Y", "X is the CEO of Y", ...); an entity's type comes from cues
(company suffixes, titles, a small gazetteer, "Project X") and from the roles it plays in
relations; "he"/"she" refer to the last person named.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rae_ml.domain.text import STOPWORDS, split_sentences

__all__ = [
    "ENTITY_TYPES",
    "ExtractedEntity",
    "ExtractedRelation",
    "Extraction",
    "extract_offline",
    "extraction_messages",
    "extraction_schema",
    "normalise_llm_extraction",
    "relation_name",
]

ENTITY_TYPES = ("person", "organization", "location", "project", "date", "concept", "email")


@dataclass(frozen=True, slots=True)
class ExtractedEntity:
    name: str
    type: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExtractedRelation:
    source: str
    relation: str
    target: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Extraction:
    entities: list[ExtractedEntity]
    relations: list[ExtractedRelation]


def relation_name(text: str) -> str:
    """`works at` -> `WORKS_AT`."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper()


# --- lexicon ---------------------------------------------------------------------------------

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE = re.compile(
    rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+\d{{4}}"
    rf"|{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|{_MONTH}\s+\d{{4}}"
    rf"|\d{{1,2}}/\d{{1,2}}/\d{{4}})\b"
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_CAP = r"(?:[A-Z][\w&'’-]*\.?)"
_NAME = rf"{_CAP}(?:(?:\s+(?:of|de|da|del|der|van|von|du|la|le|&)\s+|\s+){_CAP})*"
_NAME_RE = re.compile(_NAME)
_PRONOUN = r"\b(?:He|She|he|she)\b"
# "and" stands for the subject of the sentence's previous relation ("... and works for Y").
_SUBJECT = rf"(?:(?P<s>{_NAME}|{_PRONOUN})|(?P<and>\band))"
_ADVERB = r"(?:\s+(?:now|currently|still|also|already|recently|actually))?"
_OBJECT_NAME = rf"(?P<o>{_NAME})"
# A name, or a short lower-case phrase ("green tea", "the sales team") up to a clause break.
_OBJECT_ANY = (
    rf"(?P<o>(?:the\s+)?{_NAME}(?:\s+(?:project|initiative|programme|program))?"
    rf"|(?:(?:the|a|an|his|her|their|our|my)\s+)?[a-z][\w'’-]*"
    r"(?:\s+(?!(?:and|but|or|over|when|while|because|since|on|at|in|for|with|to|from)\b)[a-z][\w'’-]*){0,4})"
)
_ROLE = r"(?P<role>[A-Z]{2,5}|[a-z]+(?:\s+[a-z]+)?)"

_STARTERS = STOPWORDS | frozenset(
    "yesterday today tomorrow tonight last next then also however meanwhile recently currently "
    "now note dear hi hello thanks later finally first second afterwards since every each our "
    "my his her".split()
)
_CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may "
    "june july august september october november december".split()
)
_ORG_WORDS = frozenset(
    "inc inc. corp corp. corporation ltd ltd. llc gmbh ag sa plc co. company group holdings "
    "bank university college institute foundation labs laboratories technologies systems "
    "software partners agency association ministry department council hospital school studio "
    "studios ventures capital industries solutions consulting".split()
)
_LOCATION_WORDS = frozenset(
    "city street st. avenue road river lake mountain mountains county state province island "
    "islands park bay valley square district".split()
)
_PROJECT_WORDS = {"project", "initiative", "program", "programme"}
_TITLES = {"mr", "mr.", "mrs", "mrs.", "ms", "ms.", "dr", "dr.", "prof", "prof.", "sir", "madam", "miss"}
_PLACES = {
    name.casefold()
    for name in (
        "Afghanistan Argentina Australia Austria Belgium Brazil Canada Chile China Colombia Croatia "
        "Denmark Egypt England Estonia Finland France Germany Greece Hungary Iceland India Indonesia "
        "Ireland Israel Italy Japan Kenya Mexico Morocco Netherlands Nigeria Norway Pakistan Peru "
        "Poland Portugal Romania Russia Scotland Singapore Spain Sweden Switzerland Thailand Turkey "
        "Ukraine Vietnam Wales Amsterdam Athens Bangkok Barcelona Beijing Berlin Boston Brussels "
        "Budapest Cairo Chicago Copenhagen Dublin Edinburgh Geneva Hamburg Helsinki Istanbul Kyiv "
        "Lisbon London Lyon Madrid Manchester Milan Montreal Moscow Mumbai Munich Nairobi Oslo "
        "Paris Prague Rome Seattle Seoul Shanghai Stockholm Sydney Tokyo Toronto Vancouver Vienna "
        "Warsaw Zurich Europe Asia Africa"
    ).split()
} | {
    "new york",
    "san francisco",
    "los angeles",
    "hong kong",
    "new zealand",
    "united states",
    "united kingdom",
    "south africa",
    "buenos aires",
    "rio de janeiro",
    "mexico city",
    "north america",
    "south america",
    "the netherlands",
    "tel aviv",
    "cape town",
}
_BUSINESS_ROLES = frozenset(
    "ceo cto cfo coo cio founder co-founder cofounder president director owner chair chairman "
    "chairwoman employee head manager partner vp".split()
)

# Vote weights: a lexical cue is stronger evidence than a role in a relation pattern.
_CUE = 3.0
_ROLE_VOTE = 2.0
_HINT = 1.0


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    relation: str | None  # None: from the `role` group ("is the CEO of" -> CEO_OF)
    subject_type: str | None
    object_type: str | None
    confidence: float
    object_hint: str | None = None


def _pattern(
    verbs: str,
    relation: str | None,
    subject_type: str | None,
    object_type: str | None,
    confidence: float,
    *,
    any_object: bool = False,
    object_hint: str | None = None,
) -> _Pattern:
    obj = _OBJECT_ANY if any_object else _OBJECT_NAME
    return _Pattern(
        re.compile(rf"{_SUBJECT}{_ADVERB}\s+(?:{verbs})\s+{obj}"),
        relation,
        subject_type,
        object_type,
        confidence,
        object_hint,
    )


_PATTERNS = (
    _pattern(
        r"works\s+(?:at|for)|worked\s+(?:at|for)|is\s+working\s+(?:at|for)|is\s+employed\s+(?:at|by)",
        "WORKS_AT",
        "person",
        "organization",
        0.9,
    ),
    _pattern(r"joined", "WORKS_AT", "person", "organization", 0.8),
    _pattern(r"studied\s+at|studies\s+at|graduated\s+from", "STUDIED_AT", "person", "organization", 0.85),
    _pattern(r"lives\s+in|lived\s+in|is\s+living\s+in|resides\s+in", "LIVES_IN", "person", "location", 0.9),
    _pattern(r"moved\s+to|relocated\s+to", "LIVES_IN", "person", "location", 0.75),
    _pattern(r"(?:is|was)\s+born\s+in", "BORN_IN", "person", "location", 0.9),
    _pattern(r"(?:is|was|are)\s+(?:based|located|headquartered)\s+in", "BASED_IN", None, "location", 0.85),
    _pattern(r"prefers", "PREFERS", "person", None, 0.9, any_object=True, object_hint="concept"),
    _pattern(r"likes|loves|enjoys", "LIKES", "person", None, 0.85, any_object=True, object_hint="concept"),
    _pattern(r"dislikes|hates", "DISLIKES", "person", None, 0.85, any_object=True, object_hint="concept"),
    _pattern(
        r"manages|managed|oversees|supervises",
        "MANAGES",
        "person",
        None,
        0.9,
        any_object=True,
        object_hint="person",
    ),
    _pattern(r"leads|led|heads|runs", "LEADS", "person", None, 0.85, any_object=True, object_hint="project"),
    _pattern(
        r"works\s+on|worked\s+on|is\s+working\s+on", "WORKS_ON", "person", "project", 0.85, any_object=True
    ),
    _pattern(r"reports\s+to|reported\s+to", "REPORTS_TO", "person", "person", 0.9),
    _pattern(r"(?:is|was)\s+married\s+to", "MARRIED_TO", "person", "person", 0.9),
    _pattern(r"knows|met", "KNOWS", "person", "person", 0.7),
    _pattern(r"founded|co-founded|started", "FOUNDED", "person", "organization", 0.85),
    _pattern(r"owns", "OWNS", None, None, 0.8, any_object=True, object_hint="concept"),
    _Pattern(
        re.compile(rf"{_SUBJECT}\s+(?:is|was)\s+(?:the|a|an)\s+{_ROLE}\s+(?:of|at)\s+{_OBJECT_NAME}"),
        None,
        None,
        None,
        0.75,
    ),
)
_EMAIL_ALIAS = (
    re.compile(rf"(?P<s>{_NAME})\s*[(<]\s*(?P<e>{_EMAIL.pattern})\s*[)>]"),
    re.compile(rf"(?P<s>{_NAME})(?:'s|’s)\s+(?:e-?mail|email\s+address)\s+is\s+(?P<e>{_EMAIL.pattern})"),
)
_ASIDE = re.compile(r"\s*[(<][^()<>]*[)>]")
_PROJECT_PHRASE = re.compile(rf"^(?:the\s+)?(?P<name>{_NAME})\s+(?:project|initiative|program(?:me)?)$")
_LEADING_THE = re.compile(r"^the\s+(?=[A-Z])")
_DETERMINER = re.compile(r"^(?:the|a|an|his|her|their|our|my)\s+")


# --- the offline extractor -------------------------------------------------------------------


@dataclass
class _Found:
    name: str
    first_seen: int
    votes: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    aliases: list[str] = field(default_factory=list)
    sentence_start_only: bool = True


class _Collector:
    def __init__(self) -> None:
        self.found: dict[str, _Found] = {}
        self.relations: dict[tuple[str, str, str], float] = {}
        self._order = 0
        self.last_person: str | None = None

    def mention(
        self, name: str, vote: str | None = None, weight: float = 0.0, *, at_start: bool = False
    ) -> str:
        key = _key(name)
        entry = self.found.get(key)
        if entry is None:
            entry = self.found[key] = _Found(name, self._order)
            self._order += 1
        if not at_start:
            entry.sentence_start_only = False
        if vote is not None:
            entry.votes[vote] += weight
        return key

    def relate(self, source: str, relation: str, target: str, confidence: float) -> None:
        if source == target:
            return
        edge = (source, relation, target)
        self.relations[edge] = max(self.relations.get(edge, 0.0), round(confidence, 2))


def _key(name: str) -> str:
    return " ".join(name.casefold().split())


def _clean_name(raw: str, *, at_sentence_start: bool) -> str | None:
    """Trim sentence-initial fillers, possessives, calendar words and a final full stop; None when
    nothing name-like is left."""
    words = raw.split()
    if at_sentence_start:
        while words and words[0].casefold().rstrip(".") in _STARTERS:
            words = words[1:]
    while words and words[0].casefold() in _TITLES:
        words = words[1:]
    # "CEO of Initech" is a role and an organization, not a name.
    if len(words) > 2 and words[0].casefold() in _BUSINESS_ROLES and words[1] == "of":
        words = words[2:]
    while words and words[0].casefold().rstrip(".,") in _CALENDAR | {"the"}:
        words = words[1:]
    while words and words[-1].casefold().rstrip(".,") in _CALENDAR | {"of", "de", "van", "von", "&"}:
        words = words[:-1]
    if not words:
        return None
    # "Acme Corp." and "Acme Corp" are one organization.
    words[-1] = re.sub(r"(?:'s|’s)$", "", words[-1].rstrip("."))
    name = " ".join(words).strip(" -'’")
    if len(name) < 2 or name.casefold() in _STARTERS:
        return None
    return name


def _titled(raw: str) -> bool:
    words = raw.split()
    return bool(words) and words[0].casefold() in _TITLES


def _lexical_type(name: str) -> str | None:
    words = [w.casefold() for w in name.split()]
    if words[-1] in _ORG_WORDS:
        return "organization"
    if words[0] in _PROJECT_WORDS or words[-1] in _PROJECT_WORDS:
        return "project"
    if _key(name) in _PLACES or words[-1] in _LOCATION_WORDS:
        return "location"
    return None


def _default_type(name: str) -> str:
    words = name.split()
    if 2 <= len(words) <= 3 and all(w[:1].isupper() and w[1:].islower() and w.isalpha() for w in words):
        return "person"
    return "concept"


_TYPE_PRIORITY = ("organization", "location", "project", "person", "date", "email", "concept")


def _resolve_type(entry: _Found) -> str:
    if not entry.votes:
        return _default_type(entry.name)
    return max(entry.votes.items(), key=lambda kv: (kv[1], -_TYPE_PRIORITY.index(kv[0])))[0]


def _object_entity(collector: _Collector, raw: str, pattern: _Pattern, at: int) -> str | None:
    text = raw.strip()
    project = _PROJECT_PHRASE.match(text)
    if project:
        name = _clean_name(project["name"], at_sentence_start=False)
        return collector.mention(name, "project", _CUE) if name else None
    text = _LEADING_THE.sub("", text)
    if text[:1].isupper():
        name = _clean_name(text, at_sentence_start=at == 0)
        if name is None:
            return None
        lexical = "person" if _titled(text) else _lexical_type(name)
        if lexical:
            collector.mention(name, lexical, _CUE)
        if pattern.object_type:
            return collector.mention(name, pattern.object_type, _ROLE_VOTE)
        return collector.mention(name, pattern.object_hint, _HINT if pattern.object_hint else 0.0)
    phrase = _DETERMINER.sub("", text).strip()
    if not phrase or phrase.casefold() in STOPWORDS:
        return None
    return collector.mention(phrase, pattern.object_type or "concept", _ROLE_VOTE)


def _subject_entity(collector: _Collector, raw: str, pattern: _Pattern, at: int) -> tuple[str | None, float]:
    if raw.casefold() in ("he", "she"):
        return collector.last_person, 0.8
    name = _clean_name(raw, at_sentence_start=at == 0)
    if name is None:
        return None, 1.0
    lexical = "person" if _titled(raw) else _lexical_type(name)
    if lexical:
        collector.mention(name, lexical, _CUE, at_start=at == 0)
    key = collector.mention(
        name, pattern.subject_type, _ROLE_VOTE if pattern.subject_type else 0.0, at_start=at == 0
    )
    return key, 1.0


def _sentence(collector: _Collector, sentence: str) -> None:
    for email_alias in _EMAIL_ALIAS:
        for match in email_alias.finditer(sentence):
            name = _clean_name(match["s"], at_sentence_start=match.start() == 0)
            if name:
                key = collector.mention(name, "person", _HINT, at_start=match.start() == 0)
                if match["e"] not in collector.found[key].aliases:
                    collector.found[key].aliases.append(match["e"])
    aliased = {a.casefold() for f in collector.found.values() for a in f.aliases}
    for match in _EMAIL.finditer(sentence):
        if match[0].casefold() not in aliased:
            collector.mention(match[0], "email", _CUE)
    for match in _DATE.finditer(sentence):
        collector.mention(match[0], "date", _CUE)

    plain = _ASIDE.sub("", sentence)
    masked = _DATE.sub(lambda m: "#" * len(m[0]), _EMAIL.sub(lambda m: "#" * len(m[0]), plain))
    matches = sorted(
        ((match, pattern) for pattern in _PATTERNS for match in pattern.regex.finditer(masked)),
        key=lambda found: found[0].start(),
    )
    previous: tuple[str | None, float] = (None, 1.0)
    for match, pattern in matches:
        if match["and"] is not None:
            source, trust = previous
        else:
            source, trust = _subject_entity(collector, match["s"], pattern, match.start())
        target = _object_entity(collector, match["o"], pattern, match.start("o"))
        if source is None or target is None:
            continue
        previous = (source, trust)
        relation = pattern.relation
        if relation is None:
            role = match["role"]
            relation = relation_name(f"{role} of")
            collector.mention(collector.found[source].name, "person", _HINT)
            if role.casefold() in _BUSINESS_ROLES:
                collector.mention(collector.found[target].name, "organization", _ROLE_VOTE)
        elif match["and"] is not None and pattern.subject_type:
            collector.mention(collector.found[source].name, pattern.subject_type, _ROLE_VOTE)
        collector.relate(source, relation, target, pattern.confidence * trust)
        if _resolve_type(collector.found[source]) == "person":
            collector.last_person = source

    for match in _NAME_RE.finditer(masked):
        name = _clean_name(match[0], at_sentence_start=match.start() == 0)
        if name is None:
            continue
        words = name.split()
        preceding = masked[: match.start()].split()[-1:]
        titled = bool(preceding) and preceding[0].casefold() in _TITLES
        if words[0].casefold() in _TITLES:
            name, titled = " ".join(words[1:]), True
            if not name:
                continue
        lexical = _lexical_type(name)
        at_start = match.start() == 0 and len(words) == len(match[0].split())
        key = collector.mention(
            name, "person" if titled else lexical, _CUE if titled or lexical else 0.0, at_start=at_start
        )
        if _resolve_type(collector.found[key]) == "person":
            collector.last_person = key


def _merge_first_names(collector: _Collector) -> dict[str, str]:
    """A one-word person mention ("Alice") naming exactly one multi-word person ("Alice Smith")
    is that person: it becomes an alias. Returns old key -> new key."""
    people = [
        k for k, f in collector.found.items() if len(f.name.split()) > 1 and _resolve_type(f) == "person"
    ]
    moved: dict[str, str] = {}
    for key, entry in list(collector.found.items()):
        if len(entry.name.split()) != 1 or _resolve_type(entry) not in ("person", "concept"):
            continue
        owners = [
            p
            for p in people
            if key in (_key(collector.found[p].name.split()[0]), _key(collector.found[p].name.split()[-1]))
        ]
        if len(owners) == 1:
            owner = collector.found[owners[0]]
            owner.aliases.extend(a for a in [entry.name, *entry.aliases] if a not in owner.aliases)
            del collector.found[key]
            moved[key] = owners[0]
    return moved


def extract_offline(text: str, entity_types: Sequence[str] | None = None) -> Extraction:
    """Entities (in order of first mention) and relations (strongest confidence kept) of `text`,
    limited to `entity_types` when given."""
    collector = _Collector()
    for sentence in split_sentences(text):
        _sentence(collector, sentence)
    moved = _merge_first_names(collector)
    related = {
        k for edge in collector.relations for k in (moved.get(edge[0], edge[0]), moved.get(edge[2], edge[2]))
    }
    wanted = set(entity_types) if entity_types else None
    kept: dict[str, ExtractedEntity] = {}
    for key, entry in sorted(collector.found.items(), key=lambda kv: kv[1].first_seen):
        # A lone capitalised word opening a sentence ("Sales grew") is no entity unless it acts.
        if entry.sentence_start_only and len(entry.name.split()) == 1 and key not in related:
            continue
        kind = _resolve_type(entry)
        if wanted is None or kind in wanted:
            kept[key] = ExtractedEntity(entry.name, kind, tuple(entry.aliases))
    relations: list[ExtractedRelation] = []
    seen: set[tuple[str, str, str]] = set()
    for (source, relation, target), confidence in collector.relations.items():
        source, target = moved.get(source, source), moved.get(target, target)
        if source in kept and target in kept and (source, relation, target) not in seen:
            seen.add((source, relation, target))
            relations.append(ExtractedRelation(kept[source].name, relation, kept[target].name, confidence))
    return Extraction(list(kept.values()), relations)


# --- extraction through an LLM ---------------------------------------------------------------


def extraction_schema(entity_types: Sequence[str] | None = None) -> dict[str, Any]:
    """The shape an LLM must answer (strict-mode compatible: every property required, no extra
    properties)."""
    types = list(entity_types or ENTITY_TYPES)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["entities", "relations"],
        "properties": {
            "entities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "type", "aliases"],
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string", "enum": types},
                        "aliases": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "relations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["source", "relation", "target", "confidence"],
                    "properties": {
                        "source": {"type": "string"},
                        "relation": {"type": "string"},
                        "target": {"type": "string"},
                        "confidence": {"type": "number"},
                    },
                },
            },
        },
    }


def extraction_messages(text: str, entity_types: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(role, content) messages asking an LLM for the extraction."""
    types = ", ".join(entity_types or ENTITY_TYPES)
    instructions = (
        "You extract a knowledge graph from text. List the entities the text names "
        f"(types: {types}) with any other names the text uses for them as aliases, and the "
        "relations the text states between them. Relation names are UPPER_SNAKE_CASE verbs such "
        "as WORKS_AT, LIVES_IN, PREFERS, MANAGES or CEO_OF; source and target are entity names "
        "from your list; confidence is between 0 and 1. Use only what the text says."
    )
    return [("system", instructions), ("user", text)]


def normalise_llm_extraction(value: Any, entity_types: Sequence[str] | None = None) -> Extraction:
    """The LLM's (schema-valid) answer in canonical form: trimmed, de-duplicated entities;
    UPPER_SNAKE relation names; confidences clamped to [0, 1]; relation endpoints that the
    entity list lacks added as concepts (unless types are restricted, then dropped)."""
    entities: dict[str, ExtractedEntity] = {}
    for item in value.get("entities", []):
        name = " ".join(str(item["name"]).split())
        if not name or _key(name) in entities:
            continue
        aliases = _unique(" ".join(str(a).split()) for a in item.get("aliases", []))
        entities[_key(name)] = ExtractedEntity(
            name, str(item["type"]), tuple(a for a in aliases if a != name)
        )
    relations: list[ExtractedRelation] = []
    seen: set[tuple[str, str, str]] = set()
    for item in value.get("relations", []):
        ends = []
        for raw in (item["source"], item["target"]):
            name = " ".join(str(raw).split())
            if _key(name) not in entities and not entity_types and name:
                entities[_key(name)] = ExtractedEntity(name, "concept")
            ends.append(entities.get(_key(name)))
        relation = relation_name(str(item["relation"]))
        source, target = ends
        if source is None or target is None or not relation:
            continue
        edge = (source.name, relation, target.name)
        if edge not in seen:
            seen.add(edge)
            confidence = min(1.0, max(0.0, float(item["confidence"])))
            relations.append(ExtractedRelation(source.name, relation, target.name, confidence))
    return Extraction(list(entities.values()), relations)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
