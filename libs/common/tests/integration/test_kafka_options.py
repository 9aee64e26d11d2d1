"""Producer idempotence reaches a service's producer, and only the local stack turns it off.

The local broker lacks InitProducerId, which an idempotent producer sends first: against it, a
publisher that is idempotent fails at once, which shows the setting reached the producer."""

from __future__ import annotations

import logging
import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider

from rae_common.app import ServiceState
from rae_common.events import Envelope, MemoryCreated, new_envelope
from rae_common.messaging import BrokerUnavailable
from rae_common.resources import kafka_publisher
from rae_common.settings import ServiceSettings
from rae_common.telemetry import RequestMetrics
from rae_common.testing import new_topic, read_topic, settings_from_env


class KafkaSettings(ServiceSettings):
    uses = frozenset({"kafka"})


def state_of(settings: ServiceSettings) -> ServiceState:
    return ServiceState(settings=settings, tracer_provider=TracerProvider(), metrics=RequestMetrics("t"))


def envelope() -> Envelope:
    data = MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash=uuid.uuid4().hex)
    return new_envelope("memory.created", data, tenant_id="acme", producer="test")


async def test_a_services_publisher_is_idempotent_by_default(
    infra_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Settings without KAFKA_ENABLE_IDEMPOTENCE, as for a real cluster."""
    env = {k: v for k, v in infra_env.items() if k != "KAFKA_ENABLE_IDEMPOTENCE"}
    settings = KafkaSettings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]
    assert settings.kafka_enable_idempotence is True
    topic = await new_topic(settings.kafka_bootstrap_servers)
    caplog.set_level(logging.ERROR, logger="aiokafka")
    async with kafka_publisher(state_of(settings)) as publisher:
        with pytest.raises(BrokerUnavailable):
            await publisher.publish(envelope(), topic=topic)
    assert "InitProducerId" in caplog.text


async def test_the_local_stacks_settings_turn_idempotence_off(infra_env: dict[str, str]) -> None:
    settings = settings_from_env(infra_env, KafkaSettings)
    assert infra_env["KAFKA_ENABLE_IDEMPOTENCE"] == "false"
    assert settings.kafka_options().enable_idempotence is False
    topic = await new_topic(settings.kafka_bootstrap_servers)
    sent = envelope()
    async with kafka_publisher(state_of(settings)) as publisher:
        await publisher.publish(sent, topic=topic)
    [record] = await read_topic(settings.kafka_bootstrap_servers, topic, 1)
    assert record.value == sent.to_json()
