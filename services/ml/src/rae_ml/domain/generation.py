"""Generation as the service sees it: a call, its completion, the providers that answer it, the
catalog that finds a model's provider, and the ways a call fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "LOCAL_MODEL",
    "LOCAL_PROVIDER",
    "AmbiguousModel",
    "ChatCall",
    "ChatProvider",
    "ChatStream",
    "Completion",
    "GenerationCatalog",
    "InvalidSchema",
    "InvalidStructuredOutput",
    "Message",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "UnknownGenerationModel",
    "UnsupportedSchema",
]

LOCAL_PROVIDER = "local"
LOCAL_MODEL = "local-extractive"


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ChatCall:
    model: str
    messages: Sequence[Message]
    max_tokens: int
    temperature: float
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """A provider's answer. Token counts are None when the provider did not report them."""

    content: str
    finish_reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    notice: str | None = None


class ChatStream(Protocol):
    """An open streamed answer: iterate the text deltas; `prompt_tokens`, `completion_tokens`
    and `finish_reason` are known once iteration ended (None when the provider gave none)."""

    notice: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None:
        """Stop early and release the connection; safe to call twice."""
        ...


class ChatProvider(Protocol):
    name: str

    async def complete(self, call: ChatCall) -> Completion:
        """Raises ProviderError, ProviderUnavailable, ProviderTimeout, UnsupportedSchema."""
        ...

    async def open_stream(self, call: ChatCall) -> ChatStream:
        """Start a streamed answer: returns once the provider accepted the call (retries and
        the breaker apply up to here), so failures still become a proper error response."""
        ...


class ProviderError(Exception):
    """The provider failed (after retries) or answered something unusable."""

    def __init__(self, provider: str, detail: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(f"provider {provider}: {detail}")
        self.provider = provider
        self.retry_after_s = retry_after_s


class ProviderTimeout(ProviderError):
    """The provider did not answer within the timeout (after retries)."""


class ProviderUnavailable(Exception):
    """The provider's circuit breaker is open: calls are refused without trying."""

    def __init__(self, provider: str, retry_after_s: float) -> None:
        super().__init__(
            f"provider {provider} is failing; calls are paused for {retry_after_s:.1f} more seconds"
        )
        self.provider = provider
        self.retry_after_s = retry_after_s


class InvalidSchema(ValueError):
    """The request's JSON schema is not a valid schema."""


class UnsupportedSchema(ValueError):
    """The offline provider cannot build a value satisfying this (valid) schema."""


class InvalidStructuredOutput(Exception):
    """The provider's output does not parse or does not validate against the schema."""

    def __init__(self, provider: str, detail: str) -> None:
        super().__init__(f"provider {provider} returned output that does not match the schema: {detail}")
        self.provider = provider


class UnknownGenerationModel(LookupError):
    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(f"unknown generation model {name!r}; known models: {', '.join(known)}")
        self.name = name
        self.known = list(known)


class AmbiguousModel(LookupError):
    def __init__(self, name: str, candidates: Sequence[str]) -> None:
        super().__init__(
            f"model {name!r} is offered by several providers; name one of: {', '.join(candidates)}"
        )
        self.name = name
        self.candidates = list(candidates)


@dataclass(frozen=True, slots=True)
class GenerationModel:
    provider: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.provider}/{self.name}"


@dataclass
class GenerationCatalog:
    """Which provider offers which generation model. A request names a model offered by exactly
    one provider, or `provider/model` (model names may themselves contain `/`)."""

    models: list[GenerationModel] = field(default_factory=list)

    def add(self, provider: str, name: str) -> None:
        model = GenerationModel(provider, name)
        if model in self.models:
            raise ValueError(f"provider {provider} lists model {name!r} twice")
        self.models.append(model)

    @property
    def known(self) -> list[str]:
        return [m.qualified for m in self.models]

    def resolve(self, name: str) -> GenerationModel:
        """Raises UnknownGenerationModel, AmbiguousModel."""
        offering = [m for m in self.models if m.name == name]
        if len(offering) == 1:
            return offering[0]
        if len(offering) > 1:
            raise AmbiguousModel(name, [m.qualified for m in offering])
        qualified = [m for m in self.models if m.qualified == name]
        if qualified:
            return qualified[0]
        raise UnknownGenerationModel(name, self.known)
