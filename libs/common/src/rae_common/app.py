"""The app factory every service uses: errors, middlewares, telemetry, health and metrics."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rae_common.errors import install_problem_handlers, problem_response
from rae_common.health import ReadinessCheck, run_checks
from rae_common.input_checks import CHECK_INPUT
from rae_common.logs import configure_logging
from rae_common.messaging import TopicSetup
from rae_common.middleware import BodyLimitMiddleware, RequestIdMiddleware, UnhandledErrorMiddleware
from rae_common.settings import ServiceSettings
from rae_common.telemetry import (
    RequestMetrics,
    build_tracer_provider,
    instrument_app,
    instrument_httpx,
)

__all__ = ["ServiceState", "StateDep", "create_service_app", "get_state"]

Setup = Callable[["ServiceState"], AbstractAsyncContextManager[None]]


@dataclass
class ServiceState:
    """What the lifespan builds; routes reach it through `StateDep`."""

    settings: ServiceSettings
    tracer_provider: TracerProvider
    metrics: RequestMetrics
    http: httpx.AsyncClient | None = None
    checks: list[ReadinessCheck] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    shutdown_requests: list[Callable[[], None]] = field(default_factory=list)
    # The creation (or check) of the service's Kafka topics, when it uses Kafka: its consumers
    # subscribe once it is done.
    topics: TopicSetup | None = None

    def add_check(self, name: str, probe: Callable[[], Any]) -> None:
        self.checks.append(ReadinessCheck(name, probe))

    def on_shutdown(self, request_stop: Callable[[], None]) -> None:
        """Call `request_stop` as soon as the app shuts down, before any resource is closed: the
        background loops then wind down together, within one BACKGROUND_STOP_TIMEOUT_S, instead
        of each taking its own in turn as the lifespan closes them."""
        self.shutdown_requests.append(request_stop)

    def get(self, name: str) -> Any:
        return self.resources[name]


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.rae
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    setup: Setup | None = None,
    span_processors: tuple[SpanProcessor, ...] = (),
    http_timeout_s: float = 10.0,
) -> FastAPI:
    """Build a service app. Nothing connects here; `setup` opens resources in the lifespan."""
    provider = build_tracer_provider(
        settings.service_name, settings.otel_exporter_otlp_endpoint, span_processors
    )
    state = ServiceState(
        settings=settings, tracer_provider=provider, metrics=RequestMetrics(settings.service_name)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        async with AsyncExitStack() as stack:
            state.http = await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=httpx.Timeout(http_timeout_s, connect=2.0),
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                )
            )
            instrument_httpx(state.http, provider)
            if "kafka" in type(settings).uses and type(settings).topics:
                state.topics = await stack.enter_async_context(_topic_setup(state))
            if setup is not None:
                await stack.enter_async_context(setup(state))
            app.state.rae = state
            _freeze_start_up_objects()
            try:
                yield
            finally:
                requests, state.shutdown_requests = state.shutdown_requests, []
                for request_stop in requests:
                    request_stop()
                gc.unfreeze()  # garbage again once the app stops (tests start many apps per process)
        provider.shutdown()

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[CHECK_INPUT],
    )
    app.state.rae = state
    install_problem_handlers(app)
    app.include_router(_ops_router())
    for router in routers:
        app.include_router(router)

    # Middlewares wrap in reverse order of addition: metrics outermost, then request ids,
    # the body limit, CORS, and innermost the answer to errors no handler took (inside the
    # others, so its 500 is counted and carries the request id).
    app.add_middleware(UnhandledErrorMiddleware)
    if settings.app_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.app_cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(_MetricsMiddleware, metrics=state.metrics)
    instrument_app(app, provider)
    return app


@contextlib.asynccontextmanager
async def _topic_setup(state: ServiceState) -> AsyncIterator[TopicSetup]:
    """The service's topics, created (or checked, KAFKA_CREATE_TOPICS=false) in the background:
    start-up never waits for the broker, which may be down. Readiness fails while they cannot
    be had for a reason an operator must fix (missing with creation off, a replication factor
    above the broker count, no right to create them), not while the broker is away: the
    publisher's and consumers' own checks say that."""
    settings = state.settings
    topics = TopicSetup(
        settings.kafka_options(),
        sorted(type(settings).topics),
        stop_timeout_s=settings.background_stop_timeout_s,
    )
    topics.start()
    state.on_shutdown(topics.request_stop)
    state.add_check("kafka-topics", topics.probe)
    try:
        yield topics
    finally:
        await topics.stop()


def _freeze_start_up_objects() -> None:
    """Move what start-up built (modules, the app, clients, pools: ~140-210k objects) out of the
    collector's sight: it lives as long as the process, and every full collection walked all of
    it. Measured on the memory service under sequential searches: full collections every few
    hundred requests, each pausing the event loop 88-167 ms."""
    gc.collect()
    gc.freeze()


class _MetricsMiddleware:
    def __init__(self, app: Any, metrics: RequestMetrics) -> None:
        self._inner = metrics.middleware(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._inner(scope, receive, send)


def _ops_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers.")
    async def healthz(state: StateDep) -> dict[str, str]:
        return {"status": "ok", "service": state.settings.service_name}

    @router.get(
        "/readyz",
        summary="Readiness: every dependency answers.",
        responses={503: {"description": "A dependency is down (problem+json naming it)."}},
    )
    async def readyz(state: StateDep) -> JSONResponse:
        results = await run_checks(state.checks, state.settings.readiness_timeout_s)
        checks = {r.name: "ok" if r.ok else r.error for r in results}
        down = [r.name for r in results if not r.ok]
        if down:
            return problem_response(
                503,
                "Not ready: " + ", ".join(down) + " not answering.",
                slug="not-ready",
                instance="/readyz",
                extensions={"service": state.settings.service_name, "down": down, "checks": checks},
            )
        return JSONResponse({"status": "ready", "service": state.settings.service_name, "checks": checks})

    @router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
    async def metrics(state: StateDep) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
