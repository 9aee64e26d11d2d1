"""The whole suite as processes (started by the project's stack manager), traced into an
in-process OTLP receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from rae_common.testing import SUITE_CONSUMER_GROUPS, OTLPReceiver, skip_backlog
from rae_localstack import Stack


@pytest.fixture(scope="session")
def otlp() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def suite(stack: Stack, otlp: OTLPReceiver) -> Iterator[Stack]:
    # Services left from an earlier run would export to another receiver: start them afresh.
    stack.down_services()
    # Earlier tests of the session (or of earlier sessions on a kept stack) leave thousands of
    # events behind; the suite's consumers start at the end of them, as a freshly deployed suite
    # would, instead of first working through the backlog.
    asyncio.run(skip_backlog(stack.service_env()["KAFKA_BOOTSTRAP_SERVERS"], SUITE_CONSUMER_GROUPS))
    stack.up_services(
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "OUTBOX_POLL_INTERVAL_S": "0.05",
        }
    )
    yield stack
    stack.down_services()


@pytest.fixture
async def gateway(suite: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=suite.service_url("gateway"), timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def jwt_secret(suite: Stack) -> str:
    return suite.service_env()["JWT_SECRET"]
