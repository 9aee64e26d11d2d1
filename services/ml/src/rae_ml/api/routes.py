"""ml routes (thin: validate, call the use cases, map errors to problems)."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, format_sse_event
from starlette.types import Receive, Scope, Send

from rae_common.app import ServiceState, StateDep
from rae_common.auth import TenantDep
from rae_common.contracts.erasure import EmbeddingsEvicted, EvictEmbeddings
from rae_common.contracts.ml import (
    EmbedRequest,
    EmbedResponse,
    ExtractRequest,
    ExtractResponse,
    GenerateRequest,
    GenerateResponse,
    ModelList,
    vectors_to_base64,
)
from rae_common.errors import PROBLEM_BASE, ProblemError
from rae_common.middleware import current_request_id
from rae_ml.domain.embeddings import CacheUnavailable, UnknownModel
from rae_ml.domain.generation import (
    AmbiguousModel,
    InvalidSchema,
    InvalidStructuredOutput,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    UnknownGenerationModel,
    UnsupportedSchema,
)
from rae_ml.extraction_service import ExtractionService
from rae_ml.generation_service import GenerationService, GenerationStream
from rae_ml.service import EmbeddingService, ModelUnavailable
from rae_ml.usage import CallContext, UsageLedger

router = APIRouter(prefix="/v1/ml", tags=["ml"])


def _resource(name: str) -> Callable[[ServiceState], Awaitable[Any]]:
    """A dependency handing out what the lifespan put in `state.resources[name]`."""

    async def get(state: StateDep) -> Any:
        return state.get(name)

    return get


async def call_context(tenant_id: TenantDep) -> CallContext:
    """The call's usage id: the request id plus a suffix of its own. A client chooses its
    X-Request-ID (the gateway passes it on), and the cost service counts one usage per id, so a
    reused request id must not make a second call free."""
    return CallContext(
        tenant_id=tenant_id, request_id=f"{current_request_id() or 'call'}.{uuid.uuid4().hex[:12]}"
    )


EmbeddingsDep = Annotated[EmbeddingService, Depends(_resource("embeddings"))]
GenerationDep = Annotated[GenerationService, Depends(_resource("generation"))]
ExtractionDep = Annotated[ExtractionService, Depends(_resource("extraction"))]
LedgerDep = Annotated[UsageLedger, Depends(_resource("ledger"))]
ContextDep = Annotated[CallContext, Depends(call_context)]

_PROVIDER_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Invalid body, `unknown-model`, `ambiguous-model`, `invalid-schema` or "
        "`unsupported-schema`."
    },
    502: {"description": "`provider-error` (after retries) or `invalid-structured-output`."},
    503: {"description": "`provider-unavailable`: the provider's circuit breaker is open (see Retry-After)."},
    504: {"description": "`provider-timeout`: the provider did not answer in time (after retries)."},
}


def _retry_after(seconds: float | None) -> dict[str, str]:
    return {} if seconds is None else {"Retry-After": str(max(1, math.ceil(seconds)))}


def _problem(exc: Exception) -> ProblemError | None:
    """The problem a use-case error answers, or None for an error that is not ours."""
    if isinstance(exc, UnknownModel | UnknownGenerationModel):
        return ProblemError(422, str(exc), slug="unknown-model", extensions={"known": exc.known})
    if isinstance(exc, AmbiguousModel):
        return ProblemError(422, str(exc), slug="ambiguous-model", extensions={"candidates": exc.candidates})
    if isinstance(exc, InvalidSchema):
        return ProblemError(422, str(exc), slug="invalid-schema")
    if isinstance(exc, UnsupportedSchema):
        return ProblemError(422, str(exc), slug="unsupported-schema")
    if isinstance(exc, ModelUnavailable):
        return ProblemError(503, str(exc), slug="model-unavailable")
    if isinstance(exc, ProviderUnavailable):
        return ProblemError(
            503, str(exc), slug="provider-unavailable", headers=_retry_after(exc.retry_after_s)
        )
    if isinstance(exc, ProviderTimeout):
        return ProblemError(504, str(exc), slug="provider-timeout")
    if isinstance(exc, ProviderError):
        return ProblemError(502, str(exc), slug="provider-error", headers=_retry_after(exc.retry_after_s))
    if isinstance(exc, InvalidStructuredOutput):
        return ProblemError(502, str(exc), slug="invalid-structured-output")
    return None


@contextmanager
def _problems() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        problem = _problem(exc)
        if problem is None:
            raise
        raise problem from exc


@router.post(
    "/embed",
    response_model=EmbedResponse,
    summary="Embed texts as L2-normalised vectors, in order (cached by content).",
    responses={**_PROVIDER_ERRORS, 503: {"description": "The model could not be loaded, or see below."}},
)
async def embed(
    body: EmbedRequest, ctx: ContextDep, embeddings: EmbeddingsDep, ledger: LedgerDep
) -> dict[str, Any]:
    """Embed texts with a local or a provider's model."""
    with _problems():
        info = embeddings.resolve(body.model)
        async with ledger.metered(ctx, "embed", info.provider, info.name) as meter:
            result = await embeddings.embed(body.texts, info.name)
            meter.count(result.prompt_tokens, 0, estimated=result.estimated)
    return {
        "model": info.name,
        "dimensions": info.dimensions,
        "vectors": result.vectors if body.encoding_format == "float" else vectors_to_base64(result.vectors),
        "cached": result.cached,
        "usage": meter.usage,
    }


@router.post(
    "/embed/evict",
    response_model=EmbeddingsEvicted,
    summary="Evict the cached embeddings of texts, by digest (internal: called by erasures).",
    responses={
        503: {"description": "`cache-unavailable`: the cache did not answer; nothing is known evicted."}
    },
)
async def evict(body: EvictEmbeddings, embeddings: EmbeddingsDep) -> dict[str, Any]:
    """Remove every model's cached vector of each text (named by its UTF-8 SHA-256)."""
    try:
        return {"evicted": await embeddings.evict(body.digests)}
    except CacheUnavailable as exc:
        raise ProblemError(503, "The embedding cache is unavailable.", slug="cache-unavailable") from exc


@router.post(
    "/generate",
    response_model=GenerateResponse,
    summary="Generate a chat completion, optionally JSON-schema-constrained or streamed.",
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "description": 'With `stream: true`: `delta` events (`{"content": ...}`), then one '
                    "`done` event (`{model, provider, finish_reason, usage, notice}`), or an `error` "
                    "event (a problem document with the usage so far) when the provider fails mid-stream."
                }
            }
        },
        **_PROVIDER_ERRORS,
    },
)
async def generate(body: GenerateRequest, ctx: ContextDep, generation: GenerationDep) -> Any:
    """Generate text with a provider's model or the offline extractive one."""
    with _problems():
        model, call = generation.prepare(body)
        if body.stream:
            stream = await generation.open_stream(ctx, model, call)
            return _MeteredEventStream(_events(stream), finish=stream.finish)
        result = await generation.generate(ctx, model, call)
    return {
        "model": result.model.name,
        "provider": result.model.provider,
        "content": result.content,
        "output": result.output,
        "finish_reason": result.finish_reason,
        "usage": result.usage,
        "notice": result.notice,
    }


@router.post(
    "/extract",
    response_model=ExtractResponse,
    summary="Extract entities and relations from a text.",
    responses=_PROVIDER_ERRORS,
)
async def extract(body: ExtractRequest, ctx: ContextDep, extraction: ExtractionDep) -> dict[str, Any]:
    """Extract entities and relations, with an LLM or the offline extractor."""
    with _problems():
        result = await extraction.extract(ctx, body)
    found = result.extraction
    return {
        "entities": [{"name": e.name, "type": e.type, "aliases": list(e.aliases)} for e in found.entities],
        "relations": [
            {"source": r.source, "relation": r.relation, "target": r.target, "confidence": r.confidence}
            for r in found.relations
        ],
        "usage": result.usage,
        "notice": result.notice,
    }


@router.get("/models", response_model=ModelList, summary="The embedding and generation models offered.")
async def list_models(embeddings: EmbeddingsDep, generation: GenerationDep) -> dict[str, Any]:
    """List the embedding and generation models and the defaults."""
    return {
        "items": [
            *(
                {
                    "name": i.name,
                    "kind": "embedding",
                    "provider": i.provider,
                    "dimensions": i.dimensions,
                    "max_tokens": i.max_tokens,
                }
                for i in embeddings.infos
            ),
            *(
                {"name": m.name, "kind": "generation", "provider": m.provider}
                for m in generation.catalog.models
            ),
        ],
        "default": embeddings.registry.default,
        "default_generate": generation.default_model,
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return format_sse_event(event=event, data_str=json.dumps(data, ensure_ascii=False, default=_jsonable))


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return dump(mode="json")


async def _events(stream: GenerationStream) -> AsyncIterator[bytes]:
    try:
        async for delta in stream.deltas():
            yield _sse("delta", {"content": delta})
    except (ProviderError, ProviderUnavailable) as exc:
        # The 200 is already on its way: the failure becomes the stream's last event.
        stream.fail(exc)
        problem = _problem(exc)
        assert problem is not None
        usage = await stream.finish()
        yield _sse(
            "error",
            {
                "type": PROBLEM_BASE + problem.slug,
                "title": problem.title,
                "status": problem.status,
                "detail": problem.detail,
                "usage": usage,
            },
        )
        return
    usage = await stream.finish()
    yield _sse(
        "done",
        {
            "model": stream.model.name,
            "provider": stream.model.provider,
            "finish_reason": stream.finish_reason,
            "usage": usage,
            "notice": stream.notice,
        },
    )


class _MeteredEventStream(EventSourceResponse):
    """Server-sent events that meter the generation however the response ends: completed,
    failed, or cut off by a client that went away mid-stream."""

    def __init__(self, content: AsyncIterator[bytes], *, finish: Callable[[], Awaitable[object]]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._finish = finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._finish()
