"""Publisher and consumer loop against a real Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rae_common.events import TOPIC_DLQ, Envelope, MemoryCreated, new_envelope
from rae_common.messaging import ConsumedRecord, KafkaConsumerLoop, KafkaPublisher, OutgoingRecord
from rae_common.settings import ServiceSettings
from rae_common.testing import new_topic, read_topic


def event(note: str = "") -> Envelope:
    data = MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash=note or uuid.uuid4().hex)
    return new_envelope("memory.created", data, tenant_id="acme", producer="test")


async def until(predicate, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Recorder:
    """A handler that records what it saw and fails on demand."""

    def __init__(self, fail_times: dict[str, int] | None = None) -> None:
        self.fail_times = dict(fail_times or {})
        self.calls: Counter[str] = Counter()
        self.done: list[str] = []
        self.metas: list[ConsumedRecord] = []

    async def __call__(self, envelope: Envelope, meta: ConsumedRecord) -> None:
        note = envelope.data.content_hash  # type: ignore[attr-defined]
        self.calls[note] += 1
        if self.fail_times.get(note, 0) >= self.calls[note]:
            raise RuntimeError(f"failure #{self.calls[note]} for {note}")
        self.done.append(note)
        self.metas.append(meta)


@pytest.fixture
async def publisher(settings: ServiceSettings):
    publisher = KafkaPublisher(settings.kafka_bootstrap_servers, client_id="test-publisher")
    yield publisher
    await publisher.stop()


def consumer(settings: ServiceSettings, topic: str, handler, group: str, **kwargs) -> KafkaConsumerLoop:
    return KafkaConsumerLoop(
        settings.kafka_bootstrap_servers,
        group_id=group,
        topics=[topic],
        handler=handler,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        retry_backoff_s=0.01,
        **kwargs,
    )


async def test_consumer_span_continues_the_publishers_trace(settings: ServiceSettings, publisher) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorder = Recorder()
    loop = consumer(settings, topic, recorder, f"g-{uuid.uuid4().hex[:6]}", tracer_provider=provider)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("http request") as root:
        await publisher.publish(event("traced"), topic=topic)
    loop.start()
    try:
        await until(lambda: recorder.done == ["traced"], what="the record")
    finally:
        await loop.stop()
    process = [s for s in exporter.get_finished_spans() if s.name == f"{topic} process"]
    assert len(process) == 1
    assert process[0].context.trace_id == root.get_span_context().trace_id
    assert process[0].kind.name == "CONSUMER"
    assert recorder.metas[0].key == "acme"


async def test_transient_failures_are_retried_and_poison_goes_to_dlq(
    settings: ServiceSettings, publisher
) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers, partitions=1)
    recorder = Recorder(fail_times={"flaky": 2, "poison": 99})
    loop = consumer(settings, topic, recorder, f"g-{uuid.uuid4().hex[:6]}", dlq=publisher, max_attempts=3)
    poison = event("poison")
    for envelope in (event("first"), event("flaky"), poison, event("last")):
        await publisher.publish(envelope, topic=topic)
    await publisher.send_records([OutgoingRecord(topic, b"{not an envelope", "acme")])
    await publisher.publish(event("after-garbage"), topic=topic)
    loop.start()
    try:
        await until(lambda: "after-garbage" in recorder.done, what="all records")
    finally:
        await loop.stop()
    assert recorder.done == ["first", "flaky", "last", "after-garbage"]
    assert recorder.calls["flaky"] == 3
    assert recorder.calls["poison"] == 3
    assert loop.dead_lettered == 2
    parked = [
        r
        for r in await read_topic(settings.kafka_bootstrap_servers, TOPIC_DLQ, expected=10_000, timeout_s=3)
        if dict(r.headers).get("rae-dlq-source-topic") == topic.encode()
    ]
    errors = sorted(dict(r.headers)["rae-dlq-error"].decode() for r in parked)
    assert len(parked) == 2
    assert errors[0].startswith("RuntimeError: failure #3 for poison")
    assert errors[1].startswith("malformed")


async def test_offsets_are_committed_only_after_success(settings: ServiceSettings, publisher) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers, partitions=1)
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = Recorder()
    loop = consumer(settings, topic, first, group)
    for i in range(5):
        await publisher.publish(event(f"old-{i}"), topic=topic)
    loop.start()
    try:
        await until(lambda: len(first.done) == 5, what="five records")
    finally:
        await loop.stop()

    # A member of the same group starting later sees only what came after the commits.
    await publisher.publish(event("new"), topic=topic)
    second = Recorder()
    loop = consumer(settings, topic, second, group)
    loop.start()
    try:
        await until(lambda: "new" in second.done, what="the new record")
    finally:
        await loop.stop()
    assert second.done == ["new"]


async def test_a_failing_handler_without_dlq_does_not_commit(settings: ServiceSettings, publisher) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers, partitions=1)
    group = f"g-{uuid.uuid4().hex[:6]}"
    broken = Recorder(fail_times={"stuck": 10_000})
    loop = consumer(settings, topic, broken, group, max_attempts=2)
    await publisher.publish(event("stuck"), topic=topic)
    loop.start()
    try:
        await until(lambda: broken.calls["stuck"] >= 4, what="the loop to retry after reconnecting")
    finally:
        await loop.stop()
    healthy = Recorder()
    loop = consumer(settings, topic, healthy, group)
    loop.start()
    try:
        await until(lambda: healthy.done == ["stuck"], what="redelivery of the uncommitted record")
    finally:
        await loop.stop()


async def test_stop_finishes_the_record_in_hand_and_commits_it(settings: ServiceSettings, publisher) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers, partitions=1)
    group = f"g-{uuid.uuid4().hex[:6]}"
    entered, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def slow(envelope: Envelope, meta: ConsumedRecord) -> None:
        entered.set()
        await release.wait()
        finished.append(envelope.data.content_hash)  # type: ignore[attr-defined]

    loop = consumer(settings, topic, slow, group)
    await publisher.publish(event("in-hand"), topic=topic)
    await publisher.publish(event("not-started"), topic=topic)
    loop.start()
    await asyncio.wait_for(entered.wait(), timeout=30)
    stopping = asyncio.create_task(loop.stop())
    await asyncio.sleep(0)
    assert not stopping.done(), "stop must wait for the handler in progress"
    release.set()
    await asyncio.wait_for(stopping, timeout=30)
    assert finished == ["in-hand"]

    # The record in hand was committed; the one not started is delivered to the next member.
    after = Recorder()
    loop = consumer(settings, topic, after, group)
    loop.start()
    try:
        await until(lambda: "not-started" in after.done, what="the record not started")
    finally:
        await loop.stop()
    assert after.done == ["not-started"]


async def stuck_loop(
    settings: ServiceSettings, publisher, stop_timeout_s: float
) -> tuple[KafkaConsumerLoop, asyncio.Event]:
    """A started loop whose handler is in the middle of a record it never finishes; the event is
    set when that handler is cancelled."""
    topic = await new_topic(settings.kafka_bootstrap_servers, partitions=1)
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(envelope: Envelope, meta: ConsumedRecord) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop = consumer(settings, topic, stuck, f"g-{uuid.uuid4().hex[:6]}", stop_timeout_s=stop_timeout_s)
    await publisher.publish(event("forever"), topic=topic)
    loop.start()
    await asyncio.wait_for(entered.wait(), timeout=30)
    return loop, cancelled


async def test_stop_gives_up_on_a_handler_that_never_ends(settings: ServiceSettings, publisher) -> None:
    loop, cancelled = await stuck_loop(settings, publisher, stop_timeout_s=1.0)
    started = time.monotonic()
    await asyncio.wait_for(loop.stop(), timeout=15)
    assert cancelled.is_set()
    assert time.monotonic() - started < 10


async def test_a_cancelled_stop_ends_the_loop_and_is_not_swallowed(
    settings: ServiceSettings, publisher
) -> None:
    loop, cancelled = await stuck_loop(settings, publisher, stop_timeout_s=60.0)
    stopping = asyncio.create_task(loop.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # stop waits for the record in hand
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    await asyncio.wait_for(cancelled.wait(), timeout=5)


class BatchRecorder:
    """A batch handler that records each call's notes, the span current for each event, and
    fails while told to."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.batches: list[list[str]] = []
        self.trace_ids: dict[str, int] = {}

    async def __call__(self, events) -> None:
        notes = [e.envelope.data.content_hash for e in events]
        self.batches.append(notes)
        for note, consumed in zip(notes, events, strict=True):
            with consumed.activated():
                self.trace_ids[note] = trace.get_current_span().get_span_context().trace_id
        if self.fail:
            raise RuntimeError("the batch's transaction failed")


async def test_a_polls_records_go_to_the_batch_handler_in_one_call_each_in_its_own_trace(
    settings: ServiceSettings, publisher
) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers, partitions=1)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    roots = {}
    for note in ("a", "b", "c"):
        with tracer.start_as_current_span(f"request {note}") as root:
            await publisher.publish(event(note), topic=topic)
        roots[note] = root.get_span_context().trace_id
    singles, batches = Recorder(), BatchRecorder()
    group = f"g-{uuid.uuid4().hex[:6]}"
    loop = consumer(settings, topic, singles, group, batch_handler=batches, tracer_provider=provider)
    loop.start()
    try:
        await until(lambda: sum(len(b) for b in batches.batches) == 3, what="the records")
    finally:
        await loop.stop()
    assert batches.batches == [["a", "b", "c"]]
    assert singles.done == []
    assert batches.trace_ids == roots  # each event's span continues its own publisher's trace
    process = [s for s in exporter.get_finished_spans() if s.name == f"{topic} process"]
    assert sorted(s.context.trace_id for s in process) == sorted(roots.values())
    assert {s.attributes["messaging.batch.message_count"] for s in process} == {3}
    # The batch's offsets were committed: a new member of the group gets nothing again.
    after = Recorder()
    again = consumer(settings, topic, after, group)
    await publisher.publish(event("later"), topic=topic)
    again.start()
    try:
        await until(lambda: after.done == ["later"], what="the later record")
    finally:
        await again.stop()


async def test_a_failed_batch_goes_one_by_one_with_retries_and_dead_letters(
    settings: ServiceSettings, publisher
) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers, partitions=1)
    singles, batches = Recorder(fail_times={"poison": 99}), BatchRecorder(fail=True)
    loop = consumer(
        settings,
        topic,
        singles,
        f"g-{uuid.uuid4().hex[:6]}",
        batch_handler=batches,
        dlq=publisher,
        max_attempts=2,
    )
    for note in ("first", "poison", "last"):
        await publisher.publish(event(note), topic=topic)
    loop.start()
    try:
        await until(lambda: "last" in singles.done, what="all records")
    finally:
        await loop.stop()
    assert batches.batches == [["first", "poison", "last"]]
    assert singles.done == ["first", "last"]
    assert singles.calls["poison"] == 2
    assert loop.dead_lettered == 1


async def test_a_poll_with_a_malformed_record_goes_one_by_one(settings: ServiceSettings, publisher) -> None:
    topic = await new_topic(settings.kafka_bootstrap_servers, partitions=1)
    singles, batches = Recorder(), BatchRecorder()
    loop = consumer(
        settings, topic, singles, f"g-{uuid.uuid4().hex[:6]}", batch_handler=batches, dlq=publisher
    )
    await publisher.publish(event("before"), topic=topic)
    await publisher.send_records([OutgoingRecord(topic, b"{not an envelope", "acme")])
    await publisher.publish(event("after"), topic=topic)
    loop.start()
    try:
        await until(lambda: "after" in singles.done, what="all records")
    finally:
        await loop.stop()
    assert batches.batches == []
    assert singles.done == ["before", "after"]
    assert loop.dead_lettered == 1
