"""A real OpenAI-compatible HTTP server (the one external boundary), scriptable per request, and
ml apps configured to use it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rae_common.events import TOPIC_ML, Envelope, registry
from rae_common.testing import read_topic, serve_in_thread, settings_from_env
from rae_ml.domain.embeddings import ModelRegistry
from rae_ml.main import MLSettings, create_app

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
EMBED_DIMENSIONS = 8


@dataclass
class Action:
    """What the fake answers to one request (the default: a normal answer)."""

    status: int | None = None
    retry_after: str | None = None
    hang: bool = False
    bad_json: bool = False
    content: str | None = None
    usage: bool = True
    stall_after: int | None = None  # stream: stop after this many chunks until released
    dimensions: int = EMBED_DIMENSIONS


@dataclass
class Seen:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class FakeOpenAI:
    url: str = ""
    script: list[Action] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def then(self, *actions: dict[str, Any]) -> None:
        """Answer the next requests so, in order (`Action` fields); then normally again."""
        with self.lock:
            self.script.extend(Action(**a) for a in actions)

    def provider(self, name: str = "fake", models: tuple[str, ...] = ("fake-chat",)) -> dict[str, Any]:
        """An `ML_PROVIDERS` entry for this server (provider "fake" also offers `fake-embed`)."""
        return {
            "name": name,
            "kind": "openai",
            "base_url": self.url + "/v1",
            "api_key": "sk-test-key",
            "models": list(models),
            "embedding_models": [{"name": f"{name}-embed", "dimensions": EMBED_DIMENSIONS}]
            if name == "fake"
            else [],
        }

    def reset(self) -> None:
        with self.lock:
            self.script.clear()
            self.seen.clear()
        self.release.clear()

    def calls(self, path: str = "/v1/chat/completions") -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]

    def _next(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Action:
        with self.lock:
            self.seen.append(Seen(path, body, headers, time.monotonic()))
            return self.script.pop(0) if self.script else Action()

    async def _held(self) -> None:
        # The server side of "hang": holds the request until the test ends (or 30 s).
        deadline = time.monotonic() + 30
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            body = await request.json()
            action = self._next(request.url.path, body, dict(request.headers))
            failed = await self._failure(action)
            if failed is not None:
                return failed
            content = (
                action.content if action.content is not None else "Echo: " + body["messages"][-1]["content"]
            )
            if body.get("stream"):
                return StreamingResponse(self._chunks(body, content, action), media_type="text/event-stream")
            answer: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
            }
            if action.usage:
                answer["usage"] = USAGE
            return JSONResponse(answer)

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> Response:
            body = await request.json()
            action = self._next(request.url.path, body, dict(request.headers))
            failed = await self._failure(action)
            if failed is not None:
                return failed
            data = [
                {"object": "embedding", "index": i, "embedding": raw_vector(text, action.dimensions)}
                for i, text in reversed(list(enumerate(body["input"])))
            ]
            answer: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
            if action.usage:
                answer["usage"] = {
                    "prompt_tokens": 5 * len(body["input"]),
                    "total_tokens": 5 * len(body["input"]),
                }
            return JSONResponse(answer)

        return app

    async def _failure(self, action: Action) -> Response | None:
        if action.hang:
            await self._held()
        if action.status is not None:
            headers = {"Retry-After": action.retry_after} if action.retry_after else {}
            error = {"error": {"message": f"scripted failure {action.status}", "type": "fake"}}
            return JSONResponse(error, status_code=action.status, headers=headers)
        if action.bad_json:
            return Response("{not json", media_type="application/json")
        return None

    async def _chunks(self, body: dict[str, Any], content: str, action: Action) -> AsyncIterator[bytes]:
        def event(payload: dict[str, Any]) -> bytes:
            return f"data: {json.dumps(payload)}\n\n".encode()

        words = content.split(" ")
        for n, word in enumerate(words):
            if action.stall_after is not None and n == action.stall_after:
                await self._held()
            piece = word if n == 0 else " " + word
            yield event(
                {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}}]}
            )
        yield event(
            {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
        )
        if action.usage and body.get("stream_options", {}).get("include_usage"):
            yield event({"object": "chat.completion.chunk", "choices": [], "usage": USAGE})
        yield b"data: [DONE]\n\n"


def raw_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic and deliberately not unit length: the service must normalise."""
    digest = hashlib.sha256(text.encode()).digest()
    return [3.0 * (digest[i] + 1) for i in range(dimensions)]


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with serve_in_thread(fake.app(), ready_path="/health") as url:
        fake.url = url
        yield fake
        fake.release.set()


@pytest.fixture
def fake(fake_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_server.reset()
    yield fake_server
    fake_server.release.set()


@pytest.fixture
def ml_settings(infra_env: dict[str, str], fake: FakeOpenAI) -> Callable[..., MLSettings]:
    """Settings with the fake provider, fast retries and a patient breaker; overrides win."""

    def make(**overrides: Any) -> MLSettings:
        values: dict[str, Any] = {
            "ml_providers": [fake.provider()],
            "ml_provider_timeout_s": 5.0,
            "ml_provider_max_retries": 2,
            "ml_provider_backoff_base_s": 0.01,
            "ml_provider_backoff_max_s": 2.0,
            "ml_breaker_failures": 50,
            "ml_breaker_reset_s": 30.0,
        }
        values.update(overrides)
        return settings_from_env(infra_env, MLSettings, **values)

    return make


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def ml_app(
    ml_settings: Callable[..., MLSettings], models: ModelRegistry, spans: InMemorySpanExporter
) -> Callable[..., FastAPI]:
    def make(**overrides: Any) -> FastAPI:
        return create_app(
            ml_settings(**overrides), models=models, span_processors=(SimpleSpanProcessor(spans),)
        )

    return make


@pytest.fixture
def tenant() -> dict[str, str]:
    return {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}


@pytest.fixture
def usage_event(infra_env: dict[str, str]) -> Callable[[str], Awaitable[tuple[Envelope, dict[str, str]]]]:
    """The `llm.usage` event of a request id on `rae.ml.v1`, and its Kafka headers (waits for it).

    A call's usage id is `<X-Request-ID>.<suffix>`: unique per call even when a client reuses its
    request id."""

    async def find(request_id: str, timeout_s: float = 20.0) -> tuple[Envelope, dict[str, str]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in await read_topic(
                infra_env["KAFKA_BOOTSTRAP_SERVERS"], TOPIC_ML, 10**9, timeout_s=1
            ):
                envelope = registry.parse(record.value or b"")
                if envelope.idempotency_key.startswith(request_id + "."):
                    headers = {k: v.decode() for k, v in (record.headers or ())}
                    return envelope, headers
        raise AssertionError(f"no llm.usage event for request {request_id} on {TOPIC_ML}")

    return find


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a text/event-stream body."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        name = next((line[len("event: ") :] for line in lines if line.startswith("event: ")), "message")
        data = "\n".join(line[len("data: ") :] for line in lines if line.startswith("data: "))
        events.append((name, json.loads(data)))
    return events


@pytest.fixture
def parse_sse() -> Callable[[str], list[tuple[str, dict[str, Any]]]]:
    return sse_events
