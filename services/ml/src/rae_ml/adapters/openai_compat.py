"""OpenAI-compatible HTTP providers (OpenAI, vLLM, Ollama, llama.cpp server, LiteLLM, ...).

One pooled `httpx.AsyncClient` per provider. Every request goes through the provider's circuit
breaker and is retried with backoff on 429, 5xx, connection errors and timeouts (honouring
`Retry-After`); other 4xx answers are the caller's problem and are not retried.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from rae_ml.domain.embeddings import ModelInfo, RemoteVectors
from rae_ml.domain.generation import (
    ChatCall,
    Completion,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from rae_ml.domain.resilience import Backoff, CircuitBreaker, parse_retry_after

__all__ = ["OpenAICompatibleClient", "OpenAIEmbedder", "ProviderMetrics", "RetryPolicy"]

_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class ProviderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "rae_ml_provider_requests",
            "HTTP requests to model providers, by outcome (ok, rate_limited, server_error, "
            "client_error, timeout, transport_error, bad_response, rejected)",
            ["provider", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "rae_ml_provider_retries",
            "Requests to providers sent again after a failure",
            ["provider"],
            registry=registry,
        )
        self.breaker = Gauge(
            "rae_ml_breaker_state",
            "Circuit breaker of each provider: 0 closed, 1 half-open, 2 open",
            ["provider"],
            registry=registry,
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int
    backoff: Backoff


@dataclass(frozen=True, slots=True)
class _Failure:
    outcome: str
    detail: str
    retry_after_s: float | None = None


class OpenAICompatibleClient:
    """A `ChatProvider` and the transport of `OpenAIEmbedder`s for one configured provider."""

    def __init__(
        self,
        name: str,
        http: httpx.AsyncClient,
        breaker: CircuitBreaker,
        policy: RetryPolicy,
        metrics: ProviderMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.http = http
        self.breaker = breaker
        self.policy = policy
        self.metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._publish_state()

    async def complete(self, call: ChatCall) -> Completion:
        response = await self._send("/chat/completions", _chat_body(call, stream=False), stream=False)
        body = self._json(response)
        try:
            choice = body["choices"][0]
            content = choice["message"]["content"] or ""
            if not isinstance(content, str):
                raise TypeError("message content is not a string")
        except (KeyError, IndexError, TypeError) as exc:
            self._bad_response(f"unexpected chat completion shape: {exc!r}")
        prompt, completion = _usage_counts(body.get("usage"))
        return Completion(
            content=content,
            finish_reason=str(choice.get("finish_reason") or "stop"),
            prompt_tokens=prompt,
            completion_tokens=completion,
        )

    async def open_stream(self, call: ChatCall) -> OpenAIStream:
        response = await self._send("/chat/completions", _chat_body(call, stream=True), stream=True)
        return OpenAIStream(self, response)

    async def embed(self, model: str, texts: Sequence[str]) -> tuple[list[list[float]], int | None]:
        response = await self._send("/embeddings", {"model": model, "input": list(texts)}, stream=False)
        body = self._json(response)
        try:
            rows = sorted(body["data"], key=lambda row: row["index"])
            vectors = [[float(x) for x in row["embedding"]] for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            self._bad_response(f"unexpected embeddings shape: {exc!r}")
        if len(vectors) != len(texts):
            self._bad_response(f"{len(vectors)} embeddings for {len(texts)} texts")
        prompt, _ = _usage_counts(body.get("usage"))
        return vectors, prompt

    # --- transport -----------------------------------------------------------------------

    async def _send(self, path: str, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        """POST with the breaker and retries; returns a 2xx response (open when `stream`)."""
        attempt = 0
        while True:
            result = await self._attempt(path, body, stream=stream)
            if isinstance(result, httpx.Response):
                return result
            self.metrics.requests.labels(self.name, result.outcome).inc()
            delay = self.policy.backoff.delay(attempt, result.retry_after_s)
            if attempt >= self.policy.max_retries or delay is None:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                if result.outcome == "timeout":
                    raise ProviderTimeout(self.name, f"no answer within the timeout{tries}")
                raise ProviderError(self.name, result.detail + tries, retry_after_s=result.retry_after_s)
            self.metrics.retries.labels(self.name).inc()
            await self._sleep(delay)
            attempt += 1

    async def _attempt(self, path: str, body: dict[str, Any], *, stream: bool) -> httpx.Response | _Failure:
        """One try through the breaker: a 2xx response, a retryable failure, or an exception."""
        if not self.breaker.allow(self._clock()):
            self.metrics.requests.labels(self.name, "rejected").inc()
            self._publish_state()
            raise ProviderUnavailable(self.name, self.breaker.retry_after(self._clock()))
        try:
            return await self._try(path, body, stream=stream)
        except BaseException:
            # Cancelled (or failed) before a verdict: a half-open trial must not stay taken.
            self.breaker.abandon()
            raise
        finally:
            self._publish_state()

    async def _try(self, path: str, body: dict[str, Any], *, stream: bool) -> httpx.Response | _Failure:
        try:
            response = await self.http.send(self.http.build_request("POST", path, json=body), stream=stream)
        except httpx.TimeoutException:
            return self._failed(_Failure("timeout", "timed out"))
        except httpx.TransportError as exc:
            return self._failed(_Failure("transport_error", f"connection failed: {type(exc).__name__}"))
        if response.is_success:
            self.breaker.record_success()
            self.metrics.requests.labels(self.name, "ok").inc()
            return response
        detail = await _error_detail(response)
        if response.status_code in _RETRYABLE:
            outcome = "rate_limited" if response.status_code == 429 else "server_error"
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return self._failed(_Failure(outcome, f"HTTP {response.status_code}: {detail}", retry_after))
        # The provider is up and refuses this request (bad key, unknown model, ...): no retry,
        # and no mark against its health.
        self.breaker.record_success()
        self.metrics.requests.labels(self.name, "client_error").inc()
        raise ProviderError(self.name, f"HTTP {response.status_code}: {detail}")

    def _failed(self, failure: _Failure) -> _Failure:
        self.breaker.record_failure(self._clock())
        return failure

    def _publish_state(self) -> None:
        self.metrics.breaker.labels(self.name).set(int(self.breaker.state(self._clock())))

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            self._bad_response("the answer is not JSON")
        if not isinstance(body, dict):
            self._bad_response("the answer is not a JSON object")
        return body

    def _bad_response(self, detail: str) -> NoReturn:
        """A 2xx answer we cannot use: the provider is broken, not merely busy."""
        self.breaker.record_failure(self._clock())
        self._publish_state()
        self.metrics.requests.labels(self.name, "bad_response").inc()
        raise ProviderError(self.name, detail)

    def _stream_failed(self, exc: Exception) -> ProviderError:
        self.breaker.record_failure(self._clock())
        self._publish_state()
        if isinstance(exc, httpx.TimeoutException):
            self.metrics.requests.labels(self.name, "timeout").inc()
            return ProviderTimeout(self.name, "the stream stalled past the timeout")
        self.metrics.requests.labels(self.name, "bad_response").inc()
        return ProviderError(self.name, f"the stream broke off: {type(exc).__name__}: {exc}")


class OpenAIStream:
    """A `ChatStream` over the provider's server-sent events (`data: {chunk}` ... `data: [DONE]`)."""

    notice: str | None = None

    def __init__(self, client: OpenAICompatibleClient, response: httpx.Response) -> None:
        self._client = client
        self._response = response
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async for line in self._response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                for delta in self._read_chunk(data):
                    yield delta
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise self._client._stream_failed(exc) from exc
        finally:
            await self.aclose()

    def _read_chunk(self, data: str) -> list[str]:
        try:
            chunk = json.loads(data)
        except ValueError:
            self._client._bad_response("a stream chunk is not JSON")
        if not isinstance(chunk, dict):
            self._client._bad_response("a stream chunk is not a JSON object")
        if "error" in chunk:
            self._client._bad_response(f"error in stream: {str(chunk['error'])[:300]}")
        if chunk.get("usage"):
            self.prompt_tokens, self.completion_tokens = _usage_counts(chunk["usage"])
        deltas: list[str] = []
        for choice in chunk.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str) and content:
                deltas.append(content)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return deltas

    async def aclose(self) -> None:
        await self._response.aclose()


class OpenAIEmbedder:
    """A `RemoteEmbedder`: vectors checked for their size and L2-normalised here, so every
    vector the service answers is a unit vector whatever the provider sent."""

    def __init__(self, client: OpenAICompatibleClient, info: ModelInfo) -> None:
        self._client = client
        self._info = info

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def embed(self, texts: Sequence[str]) -> RemoteVectors:
        vectors, prompt_tokens = await self._client.embed(self._info.name, texts)
        info = self._info
        if any(len(vector) != info.dimensions for vector in vectors):
            size = next(len(v) for v in vectors if len(v) != info.dimensions)
            self._client._bad_response(
                f"{info.name} answered {size}-d vectors, configured as {info.dimensions}-d"
            )
        # float32, like the local model and the cache: a cached vector is bit-identical to a fresh one.
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), info.dimensions)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            self._client._bad_response(f"{info.name} answered a zero or non-finite vector")
        unit: list[list[float]] = (matrix / norms).tolist()
        return RemoteVectors(unit, prompt_tokens)


def _chat_body(call: ChatCall, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": call.model,
        "messages": [{"role": m.role, "content": m.content} for m in call.messages],
        "max_tokens": call.max_tokens,
        "temperature": call.temperature,
    }
    if call.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": call.json_schema, "strict": True},
        }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _usage_counts(usage: Any) -> tuple[int | None, int | None]:
    if not isinstance(usage, dict):
        return None, None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) and prompt >= 0 else None,
        completion if isinstance(completion, int) and completion >= 0 else None,
    )


async def _error_detail(response: httpx.Response) -> str:
    """The provider's error message (OpenAI shape `{"error": {"message": ...}}`), short."""
    try:
        raw = await response.aread()
    except httpx.HTTPError:
        raw = b""
    finally:
        await response.aclose()
    try:
        body = json.loads(raw)
        message = body["error"]["message"] if isinstance(body.get("error"), dict) else body.get("error")
    except (ValueError, AttributeError, KeyError, TypeError):
        message = None
    text = str(message) if message else raw.decode("utf-8", "replace")
    return " ".join(text.split())[:300] or response.reason_phrase
