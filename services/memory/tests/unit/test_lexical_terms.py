from rae_memory.domain.lexical import informative_terms

FREQ = {"project": 0.52, "use": 0.3, "work": 0.11, "falcon": 0.04}


def test_common_words_do_not_pick_candidates() -> None:
    assert informative_terms(["editor", "falcon", "project", "use"], FREQ, 0.1) == ["editor", "falcon"]


def test_unknown_words_count_as_rare() -> None:
    assert informative_terms(["zyzzyva"], FREQ, 0.1) == ["zyzzyva"]


def test_when_every_word_is_common_the_least_common_one_is_kept() -> None:
    assert informative_terms(["project", "work", "use"], FREQ, 0.1) == ["work"]


def test_the_threshold_is_inclusive_and_no_words_give_none() -> None:
    assert informative_terms(["work"], FREQ, 0.11) == ["work"]
    assert informative_terms([], FREQ, 0.1) == []
