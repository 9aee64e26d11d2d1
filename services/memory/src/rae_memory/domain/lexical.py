"""Which query words pick full-text candidates.

A word that most memories contain tells the candidates apart no better than no word at all (its
inverse document frequency is about zero), yet "any word" matches of it crowd out the memories
with the telling words. Candidates are therefore picked by the informative words only; every word
still counts when the candidates are ranked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["informative_terms"]


def informative_terms(
    lexemes: Sequence[str], frequencies: Mapping[str, float], max_fraction: float
) -> list[str]:
    """The lexemes found in at most `max_fraction` of the indexed rows, in query order; when every
    one is more common than that, the least common one (ties: the first). Unknown lexemes count as
    rare: statistics list only the most common ones."""
    informative = [lexeme for lexeme in lexemes if frequencies.get(lexeme, 0.0) <= max_fraction]
    if informative or not lexemes:
        return informative
    return [min(lexemes, key=lambda lexeme: frequencies.get(lexeme, 0.0))]
