"""The prompt that asks a model for one reflection over a group of memories."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_MEMORY_CHARS", "PROMPT_VERSION", "reflection_messages"]

# Stored with every reflection: a changed prompt gets a new version, so reflections written by
# different prompts can be told apart.
PROMPT_VERSION = "reflection-v1"
MAX_MEMORY_CHARS = 2000

# One sentence of rare words: the offline extractive model, which selects salient sentences of
# the whole prompt, then quotes the memories rather than the instructions.
_SYSTEM = "In two sentences, state the insight, pattern or lesson that the following memories share."


def reflection_messages(contents: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages for one group: the instructions, then the memories, oldest first."""
    memories = "\n".join(f"- {' '.join(c.split())[:MAX_MEMORY_CHARS]}" for c in contents)
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": memories},
    ]
