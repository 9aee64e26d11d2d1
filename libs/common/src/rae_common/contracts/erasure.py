"""Internal contracts of an erasure: what memory asks reflection, graph and ml to forget when a
subject is erased, and what each answers. Not exposed by the gateway."""

from __future__ import annotations

import hashlib
import urllib.parse
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rae_common.contracts.ml import MAX_TEXTS

__all__ = [
    "ACTOR_HEADER",
    "MAX_ACTOR_CHARS",
    "MAX_FORGET_IDS",
    "EmbeddingsEvicted",
    "EvictEmbeddings",
    "ForgetMemories",
    "GraphForgotten",
    "ReflectionsForgotten",
    "TextDigest",
    "actor_from_header",
    "actor_header",
    "text_digest",
]

# Who asked for an erasure (the credential's subject), set by the gateway on the erase request
# only; the gateway never passes a client's own value of it on. Percent-encoded: a subject may
# hold characters a header cannot.
ACTOR_HEADER = "X-RAE-Actor"
MAX_ACTOR_CHARS = 200


def actor_header(subject: str) -> str:
    return urllib.parse.quote(subject[:MAX_ACTOR_CHARS], safe="")


def actor_from_header(value: str) -> str:
    return urllib.parse.unquote(value)[:MAX_ACTOR_CHARS]


MAX_FORGET_IDS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ForgetMemories(_Strict):
    """Memories that are gone: forget everything derived from them."""

    memory_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_FORGET_IDS)


class ReflectionsForgotten(BaseModel):
    reflection_ids: list[uuid.UUID] = Field(
        description="Reflections removed because they cite (or are) one of the memories; each is "
        "also the id of the `reflective` memory it was stored as."
    )


class GraphForgotten(BaseModel):
    edges_pruned: int = Field(description="Edges whose only provenance the memories were.")
    nodes_pruned: int = Field(description="Entities left with neither memories nor edges.")


# SHA-256 (hex) of a text's UTF-8 bytes: how the ml service keys its embedding cache, so an
# erasure can evict a text's vectors without sending (or keeping) the text.
TextDigest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EvictEmbeddings(_Strict):
    digests: list[TextDigest] = Field(min_length=1, max_length=MAX_TEXTS)


class EmbeddingsEvicted(BaseModel):
    evicted: int = Field(description="Cache entries removed (one per text and model that had one).")
