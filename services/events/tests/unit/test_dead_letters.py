"""What the dead-letter recorder keeps of a record on rae.dlq.v1."""

from __future__ import annotations

import uuid

from aiokafka.structs import ConsumerRecord

from rae_common.events import MemoryCreated, new_envelope
from rae_events.adapters.dead_letters import dead_letter_row


def dlq_record(value: bytes, key: bytes | None, **headers: str) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="rae.dlq.v1",
        partition=1,
        offset=42,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=[(k.replace("_", "-"), v.encode()) for k, v in headers.items()],
    )


FAILED = {
    "rae_dlq_error": "RuntimeError: boom",
    "rae_dlq_source_topic": "rae.memory.v1",
    "rae_dlq_source_partition": "2",
    "rae_dlq_source_offset": "7",
    "rae_dlq_consumer_group": "graph",
    "rae_dlq_attempts": "5",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}


def test_a_consumers_dead_letter_is_kept_under_its_tenant() -> None:
    event = new_envelope(
        "memory.created",
        MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash="h"),
        tenant_id="acme",
        producer="memory",
    )
    row = dead_letter_row(dlq_record(event.to_json(), b"acme", **FAILED))
    assert row is not None
    assert (row.tenant_id, row.event_id, row.event_type) == ("acme", event.id, "memory.created")
    assert (row.source_topic, row.source_partition, row.source_offset) == ("rae.memory.v1", 2, 7)
    assert (row.consumer_group, row.attempts, row.error) == ("graph", 5, "RuntimeError: boom")
    assert (row.record_key, row.payload) == ("acme", event.to_json())
    assert row.headers["traceparent"] == FAILED["traceparent"]
    assert row.dedupe_key == f"graph|rae.memory.v1|2|7|{event.id}"


def test_a_malformed_dead_letter_is_kept_raw() -> None:
    row = dead_letter_row(dlq_record(b"not json", b"acme", **{**FAILED, "rae_dlq_attempts": "0"}))
    assert row is not None
    assert (row.event_id, row.event_type, row.payload, row.attempts) == (None, None, b"not json", 0)
    assert row.dedupe_key.startswith("graph|rae.memory.v1|2|7|")


def test_the_engines_own_webhooks_and_keyless_records_are_not_kept() -> None:
    assert dead_letter_row(dlq_record(b"{}", b"acme", rae_dlq_firing_id=str(uuid.uuid4()))) is None
    assert dead_letter_row(dlq_record(b"{}", None, **FAILED)) is None
    assert dead_letter_row(dlq_record(b"{}", b"not a tenant!", **FAILED)) is None
