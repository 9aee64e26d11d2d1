"""The embedding API contract (ml service routes, exposed as-is by the gateway)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["EmbedRequest", "EmbedResponse", "EmbedText", "Usage"]

MAX_TEXTS = 2048
MAX_TEXT_CHARS = 20_000


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


EmbedText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank)]


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[EmbedText] = Field(min_length=1, max_length=MAX_TEXTS)
    model: str | None = Field(default=None, max_length=200, description="Default model when null.")


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
    vectors: list[list[float]]
    cached: int = Field(description="How many vectors came from the cache.")
    usage: Usage
