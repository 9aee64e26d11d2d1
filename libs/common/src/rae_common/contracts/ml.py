"""The ml API contract: embeddings, generation and extraction (ml service routes, exposed as-is by
the gateway)."""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from rae_common.contracts.common import MAX_CONTENT_CHARS

__all__ = [
    "LOCAL_EXTRACT_NOTICE",
    "LOCAL_NOTICE",
    "ChatMessage",
    "EmbedRequest",
    "EmbedResponse",
    "EmbedText",
    "Entity",
    "ExtractRequest",
    "ExtractResponse",
    "GenerateRequest",
    "GenerateResponse",
    "ModelList",
    "ModelOut",
    "Relation",
    "Usage",
    "vectors_from_base64",
    "vectors_to_base64",
]

MAX_TEXTS = 2048
MAX_MESSAGES = 200
MAX_MESSAGE_CHARS = 100_000
MAX_GENERATE_TOKENS = 32_768
MAX_EXTRACT_CHARS = 50_000

# Said on every answer of the offline `local` provider, so nobody mistakes it for an LLM.
LOCAL_NOTICE = "offline extractive provider: sentences selected from the input, not written by an LLM"
LOCAL_EXTRACT_NOTICE = "offline extractor: entities and relations found by fixed patterns, not by an LLM"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# The memory content limit: whatever memory stores, ml embeds.
EmbedText = Annotated[str, Field(min_length=1, max_length=MAX_CONTENT_CHARS), AfterValidator(_not_blank)]
ModelName = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbedRequest(_Strict):
    texts: list[EmbedText] = Field(min_length=1, max_length=MAX_TEXTS)
    model: ModelName | None = Field(default=None, description="Default model when null.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float",
        description="`base64`: each vector as the base64 of its little-endian float32 values, as in "
        "OpenAI's API (a quarter of the size, and no float parsing).",
    )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    model: str
    provider: str
    estimated: bool


class EmbedResponse(BaseModel):
    model: str
    dimensions: int
    vectors: list[list[float]] | list[str] = Field(
        description="In `encoding_format`, in the order of `texts`."
    )
    cached: int = Field(description="How many vectors came from the cache.")
    usage: Usage


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS), AfterValidator(_not_blank)]


class GenerateRequest(_Strict):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    model: ModelName | None = Field(
        default=None,
        description="A model of `GET /v1/ml/models`, or `provider/model` when several providers offer "
        "it; the service's default generation model when null.",
    )
    max_tokens: int = Field(default=1024, ge=1, le=MAX_GENERATE_TOKENS)
    temperature: float = Field(default=0.7, ge=0, le=2)
    json_schema: dict[str, Any] | None = Field(
        default=None,
        description="JSON Schema the output must validate against; the answer's `output` holds the "
        "parsed value.",
    )
    stream: bool = Field(
        default=False,
        description="Answer `text/event-stream`: `delta` events, then one `done` event with the usage.",
    )

    @model_validator(mode="after")
    def _well_formed(self) -> GenerateRequest:
        # A stream cannot be taken back when the finished value fails the schema.
        if self.stream and self.json_schema is not None:
            raise ValueError("json_schema and stream cannot be combined")
        if not any(m.role in ("system", "user") for m in self.messages):
            raise ValueError("messages need at least one system or user message")
        return self


class GenerateResponse(BaseModel):
    model: str
    provider: str
    content: str = Field(description="The generated text (the JSON text with a `json_schema`).")
    output: Any = Field(default=None, description="The parsed value when a `json_schema` was given.")
    finish_reason: str = Field(description="stop | length (max_tokens reached) | what the provider said")
    usage: Usage
    notice: str | None = Field(default=None, description="Set by the offline `local` provider.")


class ExtractRequest(_Strict):
    text: Annotated[str, Field(min_length=1, max_length=MAX_EXTRACT_CHARS), AfterValidator(_not_blank)]
    entity_types: list[Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,49}$")]] | None = Field(
        default=None,
        max_length=20,
        description="Only entities of these types (and relations between them); all types when null.",
    )
    model: ModelName | None = Field(
        default=None, description="Generation model to extract with; the offline extractor when local."
    )


class Entity(BaseModel):
    name: str
    type: str = Field(description="person | organization | location | project | date | concept | email")
    aliases: list[str] = Field(default_factory=list)


class Relation(BaseModel):
    source: str = Field(description="Name of an entity of `entities`.")
    relation: str = Field(description="UPPER_SNAKE_CASE, e.g. WORKS_AT.")
    target: str = Field(description="Name of an entity of `entities`.")
    confidence: float = Field(ge=0, le=1)


class ExtractResponse(BaseModel):
    entities: list[Entity]
    relations: list[Relation]
    usage: Usage
    notice: str | None = Field(default=None, description="Set when the offline extractor answered.")


class ModelOut(BaseModel):
    name: str
    kind: Literal["embedding", "generation"]
    provider: str
    dimensions: int | None = Field(default=None, description="Embedding models only.")
    max_tokens: int | None = Field(default=None, description="Longest input of an embedding model.")


class ModelList(BaseModel):
    items: list[ModelOut]
    default: str = Field(description="Default embedding model.")
    default_generate: str = Field(description="Default generation model.")


def vectors_to_base64(vectors: Sequence[Sequence[float]]) -> list[str]:
    """Vectors in `encoding_format` `base64`: the little-endian float32 bytes of each, encoded."""
    out = []
    for vector in vectors:
        values = array.array("f", vector)
        if sys.byteorder == "big":
            values.byteswap()
        out.append(base64.b64encode(values.tobytes()).decode("ascii"))
    return out


def vectors_from_base64(encoded: Sequence[str]) -> list[list[float]]:
    """The inverse of `vectors_to_base64`."""
    out = []
    for text in encoded:
        values = array.array("f", base64.b64decode(text))
        if sys.byteorder == "big":
            values.byteswap()
        out.append(values.tolist())
    return out
