from __future__ import annotations

import pytest

from rae_graph.domain.entities import (
    Candidate,
    Contender,
    compatible,
    entity_keys,
    judge_messages,
    judged_match,
    normalise,
    pick_similar,
)


def test_names_differing_in_case_punctuation_and_article_share_a_key() -> None:
    assert normalise("The Acme Corp.") == normalise("acme  corp") == "acme corp"
    assert normalise("Zoë O'Brien") == "zoe o brien"


def test_keys_cover_aliases_once() -> None:
    assert entity_keys("Alice Smith", ["alice smith", "Alice", "asmith@example.com"]) == [
        "alice smith",
        "alice",
        "asmith@example.com",
    ]


def test_a_vague_type_is_compatible_with_any_other() -> None:
    assert compatible("person", "person")
    assert compatible("concept", "organization")
    assert not compatible("person", "location")


def test_the_most_similar_compatible_candidate_above_the_threshold_wins() -> None:
    candidates = [
        Candidate("place", "location", [1.0, 0.0]),
        Candidate("org", "organization", [0.95, 0.05]),
        Candidate("other", "organization", [0.0, 1.0]),
    ]
    picked = pick_similar([1.0, 0.0], "organization", candidates, threshold=0.9, margin=0.01)
    assert picked.match == "org"


def test_nothing_similar_enough_is_no_match() -> None:
    picked = pick_similar(
        [1.0, 0.0], "person", [Candidate("a", "person", [0.0, 1.0])], threshold=0.9, margin=0.0
    )
    assert picked.match is None and not picked.ambiguous


def test_two_candidates_about_as_similar_are_ambiguous_and_not_merged() -> None:
    candidates = [Candidate("a", "person", [1.0, 0.01]), Candidate("b", "person", [1.0, 0.0])]
    picked = pick_similar([1.0, 0.005], "person", candidates, threshold=0.9, margin=0.05)
    assert picked.match is None and picked.ambiguous


def test_ambiguous_picks_name_every_contender_too_close_to_tell_apart() -> None:
    candidates = [
        Candidate("paris", "organization", [1.0, 0.0, 0.0]),
        Candidate("berlin", "organization", [0.99, 0.14, 0.0]),
        Candidate("far", "organization", [0.0, 1.0, 0.0]),
    ]
    similar = pick_similar([1.0, 0.07, 0.0], "organization", candidates, threshold=0.5, margin=0.05)
    assert similar.ambiguous and similar.match is None
    assert set(similar.contenders) == {"paris", "berlin"}


def test_the_judge_sees_the_mention_its_context_and_numbered_contenders() -> None:
    messages = judge_messages(
        "Acme Labs",
        "organization",
        "Alice joined Acme Labs in Berlin.",
        [
            Contender("Acme Labs Paris", "organization", []),
            Contender("Acme Labs Berlin", "organization", ["ALB"]),
        ],
    )
    question = messages[-1]["content"]
    assert "Mention: Acme Labs (organization)" in question
    assert "Alice joined Acme Labs in Berlin." in question
    assert "0: Acme Labs Paris (organization)" in question
    assert "1: Acme Labs Berlin (organization; also called ALB)" in question


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ({"match": 1}, "b"),
        ({"match": 0}, "a"),
        ({"match": None}, None),
        ({"match": 2}, None),
        ({"match": -1}, None),
        ({"match": True}, None),
        ({"match": "1"}, None),
        ("1", None),
        (None, None),
    ],
)
def test_only_a_valid_index_is_a_judgement(output: object, expected: str | None) -> None:
    assert judged_match(output, ["a", "b"]) == expected
