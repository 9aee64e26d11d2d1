"""Generation use case: find the model's provider, call it, check structured output, meter it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from rae_common.contracts.ml import GenerateRequest, Usage
from rae_ml.domain.extractive import TokenCounter
from rae_ml.domain.generation import (
    LOCAL_PROVIDER,
    ChatCall,
    ChatProvider,
    ChatStream,
    Completion,
    GenerationCatalog,
    GenerationModel,
    InvalidStructuredOutput,
    Message,
)
from rae_ml.domain.schemas import check_schema, validation_error
from rae_ml.usage import CallContext, UsageLedger

__all__ = ["Generated", "GenerationService", "GenerationStream"]


@dataclass(frozen=True, slots=True)
class Generated:
    model: GenerationModel
    content: str
    output: Any
    finish_reason: str
    usage: Usage
    notice: str | None


class GenerationService:
    def __init__(
        self,
        catalog: GenerationCatalog,
        providers: Mapping[str, ChatProvider],
        ledger: UsageLedger,
        counter: TokenCounter,
        *,
        default_model: str,
    ) -> None:
        self.catalog = catalog
        self.providers = dict(providers)
        self.ledger = ledger
        self.counter = counter
        self.default_model = default_model

    def resolve(self, model: str | None) -> GenerationModel:
        """Raises UnknownGenerationModel, AmbiguousModel."""
        return self.catalog.resolve(model or self.default_model)

    def prepare(self, request: GenerateRequest) -> tuple[GenerationModel, ChatCall]:
        """The model and the provider call of a request. Raises UnknownGenerationModel,
        AmbiguousModel, InvalidSchema."""
        model = self.resolve(request.model)
        if request.json_schema is not None:
            check_schema(request.json_schema)
        call = ChatCall(
            model=model.name,
            messages=[Message(m.role, m.content) for m in request.messages],
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            json_schema=request.json_schema,
        )
        return model, call

    async def generate(
        self, ctx: CallContext, model: GenerationModel, call: ChatCall, *, operation: str = "generate"
    ) -> Generated:
        """Raises ProviderError, ProviderTimeout, ProviderUnavailable, UnsupportedSchema,
        InvalidStructuredOutput (after metering: the provider was paid for that output)."""
        provider = self.providers[model.provider]
        async with self.ledger.metered(
            ctx, operation, model.provider, model.name, **_request_attributes(call)
        ) as meter:
            completion = await provider.complete(call)
            prompt, produced, estimated = await self._counts(model, call, completion)
            meter.count(prompt, produced, estimated=estimated)
            meter.span.set_attribute("gen_ai.response.finish_reasons", [completion.finish_reason])
            output = None
            if call.json_schema is not None:
                output = _structured(model.provider, call.json_schema, completion.content)
        assert meter.usage is not None
        return Generated(
            model, completion.content, output, completion.finish_reason, meter.usage, completion.notice
        )

    async def open_stream(self, ctx: CallContext, model: GenerationModel, call: ChatCall) -> GenerationStream:
        """Start a streamed generation (the provider accepted it once this returns). Raises
        ProviderError, ProviderTimeout, ProviderUnavailable."""
        span = self.ledger.start_span("generate", model.provider, model.name, **_request_attributes(call))
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=True, set_status_on_exception=True):
                stream = await self.providers[model.provider].open_stream(call)
        except BaseException:
            span.end()
            raise
        return GenerationStream(self, ctx, model, call, stream, span)

    async def _counts(
        self, model: GenerationModel, call: ChatCall, completion: Completion
    ) -> tuple[int, int, bool]:
        prompt = completion.prompt_tokens
        produced = completion.completion_tokens
        if prompt is None:
            prompt = await self.estimate([m.content for m in call.messages])
        if produced is None:
            produced = await self.estimate([completion.content])
        missing = completion.prompt_tokens is None or completion.completion_tokens is None
        # The local provider counts with this very tokenizer: its counts are exact.
        return prompt, produced, missing and model.provider != LOCAL_PROVIDER

    async def estimate(self, texts: Sequence[str]) -> int:
        return sum(await asyncio.to_thread(self.counter.count, texts))


class GenerationStream:
    """A streamed generation: iterate `deltas()`, then `finish()` meters it, exactly once, also
    when the stream broke off or the client went away (counting what was generated)."""

    def __init__(
        self,
        service: GenerationService,
        ctx: CallContext,
        model: GenerationModel,
        call: ChatCall,
        stream: ChatStream,
        span: Span,
    ) -> None:
        self.service = service
        self.ctx = ctx
        self.model = model
        self.call = call
        self.stream = stream
        self.span = span
        self._parts: list[str] = []
        self._complete = False
        self._finishing: asyncio.Future[Usage] | None = None

    @property
    def notice(self) -> str | None:
        return self.stream.notice

    @property
    def finish_reason(self) -> str:
        return self.stream.finish_reason or ("stop" if self._complete else "interrupted")

    async def deltas(self) -> AsyncIterator[str]:
        async for delta in self.stream:
            self._parts.append(delta)
            yield delta
        self._complete = True

    def fail(self, exc: BaseException) -> None:
        self.span.record_exception(exc)
        self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))

    async def finish(self) -> Usage:
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self._finish())
        # Shielded: metering completes even when the caller is being cancelled.
        return await asyncio.shield(self._finishing)

    async def _finish(self) -> Usage:
        try:
            await self.stream.aclose()
            stream, content = self.stream, "".join(self._parts)
            prompt = stream.prompt_tokens
            produced = stream.completion_tokens if self._complete else None
            estimated = (prompt is None or produced is None) and self.model.provider != LOCAL_PROVIDER
            if prompt is None:
                prompt = await self.service.estimate([m.content for m in self.call.messages])
            if produced is None:
                produced = await self.service.estimate([content])
            self.span.set_attribute("gen_ai.response.finish_reasons", [self.finish_reason])
            return await self.service.ledger.record(
                self.ctx,
                "generate",
                self.model.provider,
                self.model.name,
                prompt,
                produced,
                estimated=estimated,
                span=self.span,
            )
        finally:
            self.span.end()


def _request_attributes(call: ChatCall) -> dict[str, Any]:
    return {"gen_ai.request.max_tokens": call.max_tokens, "gen_ai.request.temperature": call.temperature}


def _structured(provider: str, schema: dict[str, Any], content: str) -> Any:
    try:
        value = json.loads(content)
    except ValueError as exc:
        raise InvalidStructuredOutput(provider, f"not JSON ({exc})") from exc
    error = validation_error(schema, value)
    if error is not None:
        raise InvalidStructuredOutput(provider, error)
    return value
