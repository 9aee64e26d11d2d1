"""The offline entity/relation extractor on realistic sentences, and the LLM answer's clean-up."""

from __future__ import annotations

from rae_ml.domain.extraction import (
    ExtractedEntity,
    ExtractedRelation,
    extract_offline,
    extraction_messages,
    extraction_schema,
    normalise_llm_extraction,
    relation_name,
)
from rae_ml.domain.schemas import check_schema, validation_error


def entities(text: str, types: list[str] | None = None) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {e.name: (e.type, e.aliases) for e in extract_offline(text, types).entities}


def relations(text: str) -> set[tuple[str, str, str]]:
    return {(r.source, r.relation, r.target) for r in extract_offline(text).relations}


def test_a_person_their_employer_home_and_preference() -> None:
    text = "Alice Smith works at Acme Corp. She lives in Berlin. Alice prefers green tea over coffee."
    result = extract_offline(text)

    assert result.entities == [
        ExtractedEntity("Alice Smith", "person", ("Alice",)),
        ExtractedEntity("Acme Corp", "organization"),
        ExtractedEntity("Berlin", "location"),
        ExtractedEntity("green tea", "concept"),
    ]
    assert result.relations == [
        ExtractedRelation("Alice Smith", "WORKS_AT", "Acme Corp", 0.9),
        # "She" is resolved to the last person named: a little less certain.
        ExtractedRelation("Alice Smith", "LIVES_IN", "Berlin", 0.72),
        ExtractedRelation("Alice Smith", "PREFERS", "green tea", 0.9),
    ]


def test_roles_projects_and_an_email_alias() -> None:
    text = "Bob Jones (bob@example.com) manages the Apollo project. Bob is the CEO of Initech."
    assert entities(text) == {
        "Bob Jones": ("person", ("bob@example.com", "Bob")),
        "Apollo": ("project", ()),
        "Initech": ("organization", ()),
    }
    assert relations(text) == {("Bob Jones", "MANAGES", "Apollo"), ("Bob Jones", "CEO_OF", "Initech")}


def test_titles_coordination_and_multi_word_places() -> None:
    text = "Dr. Kim reports to Maria Garcia. Maria Garcia lives in New York and works for Umbrella Inc."
    assert entities(text) == {
        "Kim": ("person", ()),
        "Maria Garcia": ("person", ()),
        "New York": ("location", ()),
        "Umbrella Inc": ("organization", ()),
    }
    assert relations(text) == {
        ("Kim", "REPORTS_TO", "Maria Garcia"),
        ("Maria Garcia", "LIVES_IN", "New York"),
        ("Maria Garcia", "WORKS_AT", "Umbrella Inc"),
    }


def test_dates_emails_and_named_projects() -> None:
    text = (
        "On 2024-03-01 Erin Walsh joined Globex. Project Phoenix is based in Oslo. "
        "Send the invoice to billing@acme.com by March 3, 2025."
    )
    assert entities(text) == {
        "2024-03-01": ("date", ()),
        "Erin Walsh": ("person", ()),
        "Globex": ("organization", ()),
        "Project Phoenix": ("project", ()),
        "Oslo": ("location", ()),
        "billing@acme.com": ("email", ()),
        "March 3, 2025": ("date", ()),
    }
    assert relations(text) == {("Erin Walsh", "WORKS_AT", "Globex"), ("Project Phoenix", "BASED_IN", "Oslo")}


def test_sentence_openers_are_not_entities_unless_they_act() -> None:
    text = "Sales grew by ten percent. Yesterday Carol met Dave Miller in Paris. However the plan held."
    assert entities(text) == {
        "Carol": ("person", ()),
        "Dave Miller": ("person", ()),
        "Paris": ("location", ()),
    }
    assert relations(text) == {("Carol", "KNOWS", "Dave Miller")}


def test_possessive_email_and_likes() -> None:
    text = "Carol's email is carol@corp.io. Carol likes hiking and loves Lisbon."
    assert entities(text) == {
        "Carol": ("person", ("carol@corp.io",)),
        "hiking": ("concept", ()),
        "Lisbon": ("location", ()),
    }
    assert relations(text) == {("Carol", "LIKES", "hiking"), ("Carol", "LIKES", "Lisbon")}


def test_entity_types_limit_entities_and_the_relations_between_them() -> None:
    text = "Alice Smith works at Acme Corp. She lives in Berlin."
    result = extract_offline(text, ["person", "organization"])
    assert [e.name for e in result.entities] == ["Alice Smith", "Acme Corp"]
    assert [r.relation for r in result.relations] == ["WORKS_AT"]


def test_nothing_to_find_is_an_empty_graph() -> None:
    result = extract_offline("it rained all day and nobody went out.")
    assert (result.entities, result.relations) == ([], [])


def test_relation_names_are_upper_snake() -> None:
    assert relation_name("works at") == "WORKS_AT"
    assert relation_name(" is-the head of ") == "IS_THE_HEAD_OF"


def test_the_llm_schema_is_strict_and_limits_types() -> None:
    schema = extraction_schema(["person", "organization"])
    check_schema(schema)
    assert schema["additionalProperties"] is False
    entity = schema["properties"]["entities"]["items"]
    assert entity["properties"]["type"]["enum"] == ["person", "organization"]
    assert set(entity["required"]) == set(entity["properties"])
    assert validation_error(
        schema, {"entities": [{"name": "X", "type": "planet", "aliases": []}], "relations": []}
    )
    role, instructions = extraction_messages("Alice works at Acme.", ["person"])[0]
    assert role == "system" and "person" in instructions and "UPPER_SNAKE_CASE" in instructions


def test_an_llm_answer_is_cleaned_up() -> None:
    answer = {
        "entities": [
            {"name": "  Alice   Smith ", "type": "person", "aliases": ["Alice", "Alice Smith", "Alice"]},
            {"name": "alice smith", "type": "person", "aliases": []},
            {"name": "Acme", "type": "organization", "aliases": []},
        ],
        "relations": [
            {"source": "Alice Smith", "relation": "works at", "target": "Acme", "confidence": 1.7},
            {"source": "alice smith", "relation": "WORKS_AT", "target": "acme", "confidence": 0.4},
            {"source": "Alice Smith", "relation": "likes", "target": "jazz", "confidence": -2},
        ],
    }
    result = normalise_llm_extraction(answer)
    assert result.entities == [
        ExtractedEntity("Alice Smith", "person", ("Alice",)),
        ExtractedEntity("Acme", "organization"),
        ExtractedEntity("jazz", "concept"),
    ]
    assert result.relations == [
        ExtractedRelation("Alice Smith", "WORKS_AT", "Acme", 1.0),
        ExtractedRelation("Alice Smith", "LIKES", "jazz", 0.0),
    ]
    limited = normalise_llm_extraction(answer, ["person", "organization"])
    assert [r.relation for r in limited.relations] == ["WORKS_AT"]
