"""Test helpers shared by the services' test suites (no fakes of infrastructure here)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from rae_common.events import ALL_TOPICS, TOPIC_DLQ, TOPIC_MEMORY, TOPIC_ML, TOPIC_REFLECTION
from rae_common.messaging import create_topics
from rae_common.settings import ServiceSettings

__all__ = [
    "error_locs",
    "eventually",
    "LoopbackHTTPServer",
    "OTLPReceiver",
    "QuietHandler",
    "ReceivedSpan",
    "SUITE_CONSUMER_GROUPS",
    "new_topic",
    "problem",
    "read_topic",
    "serve_app",
    "serve_in_thread",
    "settings_from_env",
    "skip_backlog",
]

S = TypeVar("S", bound=ServiceSettings)

#: Every service's consumer group and its topics (for `skip_backlog` before the whole suite starts).
SUITE_CONSUMER_GROUPS: Mapping[str, Sequence[str]] = {
    "events-engine": ALL_TOPICS,
    "events-dlq": (TOPIC_DLQ,),
    "graph": (TOPIC_MEMORY,),
    "cost": (TOPIC_ML,),
    "reflection": (TOPIC_REFLECTION, TOPIC_MEMORY),
}
T = TypeVar("T")


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an in-process client, errors answered as the app would."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body of `response`, asserting its status and media type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def error_locs(body: dict[str, Any]) -> list[list[str]]:
    """The `loc` of every validation error a 422 problem lists."""
    return [error["loc"] for error in body.get("errors", [])]


def settings_from_env(env: Mapping[str, str], cls: type[S], **overrides: Any) -> S:
    """Settings for an in-process app from a stack's environment, tuned for fast tests
    (quick consumer-group joins on the local broker, short outbox polls)."""
    values: dict[str, Any] = {k.lower(): v for k, v in env.items() if k.lower() in cls.model_fields}
    values.update(kafka_session_timeout_ms=2000, kafka_heartbeat_interval_ms=500, outbox_poll_interval_s=0.05)
    values.update(overrides)
    return cls(**values)


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout_s: float = 60, what: str = "", interval_s: float = 0.1
) -> T:
    """Poll `check` until it returns something other than None, and return that; fail after
    `timeout_s` naming `what` (tests poll with a deadline instead of sleeping)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing within {timeout_s} s: {what or check}")
        await asyncio.sleep(interval_s)


async def new_topic(bootstrap: str, partitions: int = 3) -> str:
    """A fresh topic, so a test reads only what it wrote."""
    topic = f"test.{uuid.uuid4().hex[:10]}"
    await create_topics(bootstrap, [topic], partitions=partitions)
    return topic


async def read_topic(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning until `expected` records arrived or the deadline passed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await asyncio.sleep(0.05)
        if not partitions:
            raise AssertionError(f"topic {topic} is unknown to the broker")
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while len(records) < expected and time.monotonic() < deadline:
            for part in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not print every request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 (silence)
        return


class LoopbackHTTPServer:
    """A real HTTP server on a free 127.0.0.1 port, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class OTLPReceiver:
    """An in-process OTLP/HTTP trace receiver (`/v1/traces`, protobuf) for end-to-end tests."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver._ingest(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(ExportTraceServiceResponse().SerializeToString())

        self._http = LoopbackHTTPServer(Handler)

    @property
    def endpoint(self) -> str:
        return self._http.url

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def _ingest(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=int(span.kind),
                            attributes={
                                a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value")
                                for a in span.attributes
                            },
                        )
                    )
        with self._lock:
            self.spans.extend(received)

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    # Scalar attributes (string, bool, int, double) by key.
    attributes: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def serve_in_thread(
    app: FastAPI, ready_path: str = "/readyz", timeout_s: float = 120.0, port: int = 0
) -> Iterator[str]:
    """Serve `app` over real HTTP on 127.0.0.1 from a thread (on `port`, or a free one); yields
    its base URL once `ready_path` answers 200. For tests where another app must call it over the
    network, or a stack manager must find it at its own port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="serve-in-thread", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not (server.started and server.servers) and time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the app failed to start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=2) as client:
        while client.get(url + ready_path).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}{ready_path} never answered 200")
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


async def skip_backlog(bootstrap: str, groups: Mapping[str, Sequence[str]], timeout_s: float = 60) -> None:
    """Join each consumer group (name -> its topics) as its only member and commit the end of
    every partition it consumes, so its next member starts at what comes next, as a freshly
    deployed service would, instead of working through what earlier tests left behind."""
    for group, topics in groups.items():
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
            rebalance_timeout_ms=2000,
        )
        await consumer.start()
        try:
            await consumer.topics()
            expected = sum(len(consumer.partitions_for_topic(t) or ()) for t in topics)
            deadline = time.monotonic() + timeout_s
            while len(consumer.assignment()) < expected:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"group {group} never handed over all its partitions")
                await consumer.getmany(timeout_ms=200)
            partitions = list(consumer.assignment())
            await consumer.seek_to_end(*partitions)
            await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
        finally:
            await consumer.stop()
