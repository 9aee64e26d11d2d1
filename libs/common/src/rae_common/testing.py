"""Test helpers shared by the services' test suites (no fakes of infrastructure here)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import asyncio
import time
import uuid

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI

from rae_common.messaging import create_topics
from rae_common.settings import ServiceSettings

__all__ = ["new_topic", "read_topic", "serve_app", "settings_from_env"]

S = TypeVar("S", bound=ServiceSettings)


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an in-process client, errors answered as the app would."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


def settings_from_env(env: Mapping[str, str], cls: type[S], **overrides: Any) -> S:
    """Settings for an in-process app from a stack's environment, tuned for fast tests
    (quick consumer-group joins on the local broker, short outbox polls)."""
    values: dict[str, Any] = {k.lower(): v for k, v in env.items() if k.lower() in cls.model_fields}
    values.update(kafka_session_timeout_ms=2000, kafka_heartbeat_interval_ms=500, outbox_poll_interval_s=0.05)
    values.update(overrides)
    return cls(**values)


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
