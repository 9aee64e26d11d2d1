"""Envelope and registry: typed payloads, forward compatibility, clear errors."""

from __future__ import annotations

import json
import uuid

import pydantic
import pytest

from rae_common.events import (
    EventData,
    EventRegistry,
    MemoryCreated,
    UnknownEvent,
    new_envelope,
    registry,
    topic_for,
)


def make_event() -> bytes:
    data = MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash="h", tags=["a"])
    return new_envelope("memory.created", data, tenant_id="acme", producer="memory").to_json()


def test_roundtrip_gives_typed_payload() -> None:
    raw = make_event()
    envelope = registry.parse(raw)
    assert isinstance(envelope.data, MemoryCreated)
    assert envelope.data.tags == ["a"]
    assert envelope.to_json() == raw


def test_unknown_fields_are_ignored() -> None:
    doc = json.loads(make_event())
    doc["new_top_level"] = 1
    doc["data"]["added_later"] = "x"
    envelope = registry.parse(json.dumps(doc))
    assert isinstance(envelope.data, MemoryCreated)


def test_unknown_type_is_kept_raw() -> None:
    doc = json.loads(make_event())
    doc["type"] = "memory.archived"
    envelope = registry.parse(json.dumps(doc).encode())
    assert isinstance(envelope.data, UnknownEvent)
    assert envelope.data.model_extra is not None
    assert envelope.data.model_extra["layer"] == "episodic"


def test_newer_version_of_known_type_is_not_forced_into_old_model() -> None:
    doc = json.loads(make_event())
    doc["version"] = 2
    assert isinstance(registry.parse(json.dumps(doc)).data, UnknownEvent)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{}", json.dumps({"type": "memory.created"}).encode()],
)
def test_malformed_envelopes_raise_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="malformed"):
        registry.parse(raw)


def test_bad_payload_of_known_type_raises() -> None:
    doc = json.loads(make_event())
    doc["data"]["memory_id"] = "not-a-uuid"
    with pytest.raises(ValueError):
        registry.parse(json.dumps(doc))


def test_envelope_is_frozen() -> None:
    envelope = registry.parse(make_event())
    with pytest.raises(pydantic.ValidationError):
        envelope.tenant_id = "other"  # type: ignore[misc]


def test_registry_refuses_a_second_model_for_the_same_type() -> None:
    local = EventRegistry()

    @local.register("x.happened")
    class First(EventData):
        a: int

    with pytest.raises(ValueError):

        @local.register("x.happened")
        class Second(EventData):
            b: int

    assert local.known() == [("x.happened", 1)]


def test_topics_follow_the_domain() -> None:
    assert topic_for("memory.created") == "rae.memory.v1"
    with pytest.raises(ValueError):
        topic_for("nonsense.event")
