"""Kafka over aiokafka: a publisher and a consumer loop that carry trace context in headers.

Delivery is at-least-once. The consumer commits a record's offset only after its handler
succeeded (or the record was parked on the dead-letter topic), so a crash replays it; handlers
get exactly-once effects through the inbox (`rae_common.inbox`).

A broker that loses its log (the local broker keeps it in memory; a cluster can be rebuilt) is
noticed by the consumer, which starts the new log over instead of waiting at offsets it no longer
has; what the lost log held is re-published from the producers' outboxes (`rae_common.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import ConsumerRecord, TopicPartition
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from rae_common.background import BackgroundLoop
from rae_common.events import TOPIC_DLQ, Envelope, EventRegistry, registry, topic_for
from rae_common.kafka_options import KafkaOptions
from rae_common.telemetry import extract_context, inject_context

__all__ = [
    "BatchHandler",
    "BrokerUnavailable",
    "ConsumedEvent",
    "ConsumedRecord",
    "Handler",
    "KafkaBroadcastLoop",
    "KafkaConsumerLoop",
    "KafkaPublisher",
    "OutgoingRecord",
    "TopicProblem",
    "TopicSetup",
    "create_topics",
    "ensure_topics",
    "kafka_options",
]

_log = logging.getLogger("rae.messaging")


class BrokerUnavailable(Exception):
    """The broker could not be reached or did not acknowledge in time."""


class TopicProblem(Exception):
    """Topics cannot be had as configured: missing while KAFKA_CREATE_TOPICS=false, a replication
    factor above the broker count, no right to create them. An operator must act; retrying
    alone does not help."""


class _LogReplaced(Exception):
    """A partition's log is shorter than it was: the broker lost it and started a new one."""


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka has no stubs
    """Counts the times the group handed this member its partitions (across reconnections), and
    starts them from the beginning of their logs when the broker has lost them.

    A broker that lost the group's offsets (they live beside its log) has lost the logs too. It
    shows when the partitions are handed out again (the broker forgot the member as well): one
    this member committed has no offset any more. Then none of the group's offsets is trusted,
    since one may have been committed, from records of the lost log, into the new one, where it
    would skip what the new log holds below it."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.count = 0
        self.consumer: AIOKafkaConsumer | None = None
        self.from_the_start = False
        self.committed: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:  # noqa: ARG002
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.count += 1
        consumer = self.consumer
        if consumer is None or not assigned:
            return
        if not self.from_the_start:
            self.from_the_start = await self._offsets_lost(consumer, assigned)
        if self.from_the_start:
            await consumer.seek_to_beginning(*assigned)
            self.from_the_start = False
            self.committed.clear()

    async def _offsets_lost(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> bool:
        for tp in assigned & self.committed:
            try:
                offset = await consumer.committed(tp)
            except Exception:  # the next assignment checks again
                return False
            if offset is None:
                _log.warning(
                    "consumer %s: the broker no longer has the offset of %s/%d; reading every "
                    "partition from the start (a broker that lost its log)",
                    self.group_id,
                    tp.topic,
                    tp.partition,
                )
                return True
        return False


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    value: bytes
    key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]


Handler = Callable[[Envelope, ConsumedRecord], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    """One event of a batch: the envelope, its record, and the context of its processing span."""

    envelope: Envelope
    meta: ConsumedRecord
    context: Context

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        """Make this event's span the current one (trace ids, headers of the events it causes)."""
        token = otel_context.attach(self.context)
        try:
            yield
        finally:
            otel_context.detach(token)


BatchHandler = Callable[[Sequence[ConsumedEvent]], Awaitable[None]]


def kafka_options(connection: KafkaOptions | str) -> KafkaOptions:
    """`connection` itself, or for a bare address `KafkaOptions.local`: what tests and the bench
    pass for the local broker. Services pass the options of their settings (idempotence on
    unless KAFKA_ENABLE_IDEMPOTENCE=false)."""
    return connection if isinstance(connection, KafkaOptions) else KafkaOptions.local(connection)


def _tracer(provider: TracerProvider | None) -> trace.Tracer:
    return trace.get_tracer("rae.messaging", tracer_provider=provider)


class KafkaPublisher:
    """A lazily (re)connecting producer, idempotent unless its options turn that off.

    Every send first checks that its topics exist, and creates those that do not (with the
    options' partitions and replication factor): a broker restarted without its data still
    acknowledges records for a topic it no longer has, from a producer that remembers the topic,
    and the local broker then loses them and fails the first batches written after the topic is
    created again (`AlreadyExists`). The check asks for the list of topics, which creates none (asking for one
    topic by name would, with the broker's default partitions)."""

    def __init__(
        self,
        connection: KafkaOptions | str,
        *,
        client_id: str,
        tracer_provider: TracerProvider | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.options = kafka_options(connection)
        self.bootstrap_servers = self.options.bootstrap_servers
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._tracer = _tracer(tracer_provider)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **self.options.producer_kwargs(),
                    client_id=self.client_id,
                    acks="all",
                    request_timeout_ms=int(self.timeout_s * 1000),
                )
                try:
                    await asyncio.wait_for(producer.start(), timeout=self.timeout_s)
                except BaseException as exc:
                    # Cancelled too (a stopping service's relay): an unstopped producer leaks its client.
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    if not isinstance(exc, Exception):
                        raise
                    raise BrokerUnavailable(f"cannot reach Kafka at {self.bootstrap_servers}: {exc}") from exc
                self._producer = producer
            return self._producer

    async def _reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def ping(self) -> None:
        """Readiness: connected, and the cluster answers a metadata request."""
        producer = await self._ensure()
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout=self.timeout_s)
        except Exception as exc:
            await self._reset()
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc

    async def send_records(self, records: Sequence[OutgoingRecord]) -> None:
        """Send all, then wait for every acknowledgement; any failure fails the whole call."""
        if not records:
            return
        producer = await self._ensure()
        try:
            await asyncio.wait_for(
                self._ensure_topics(producer, {r.topic for r in records}), timeout=self.timeout_s
            )
            futures = [
                await producer.send(
                    r.topic,
                    value=r.value,
                    key=r.key.encode() if r.key is not None else None,
                    headers=[(k, v.encode()) for k, v in r.headers.items()],
                )
                for r in records
            ]
            await asyncio.wait_for(asyncio.gather(*futures), timeout=self.timeout_s)
        except Exception as exc:
            await self._reset()
            raise BrokerUnavailable(f"publish failed: {type(exc).__name__}: {exc}") from exc

    async def _ensure_topics(self, producer: AIOKafkaProducer, topics: set[str]) -> None:
        missing = topics - (await producer.client.fetch_all_metadata()).topics()
        if missing:
            _log.warning("missing topics %s (a broker without its data?)", sorted(missing))
            await ensure_topics(self.options, sorted(missing))

    async def publish(self, envelope: Envelope, *, topic: str | None = None) -> None:
        """Publish one envelope keyed by tenant, in a producer span that continues the trace."""
        target = topic or topic_for(envelope.type)
        with self._tracer.start_as_current_span(
            f"{target} publish",
            kind=SpanKind.PRODUCER,
            attributes=_messaging_attributes(target, envelope),
        ):
            headers: dict[str, str] = {}
            inject_context(headers)
            await self.send_records([OutgoingRecord(target, envelope.to_json(), envelope.tenant_id, headers)])

    async def stop(self) -> None:
        await self._reset()


def _consumed(record: ConsumerRecord[bytes, bytes]) -> ConsumedRecord:
    return ConsumedRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        headers={k: v.decode("utf-8", "replace") for k, v in (record.headers or ())},
    )


def _messaging_attributes(topic: str, envelope: Envelope | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"messaging.system": "kafka", "messaging.destination.name": topic}
    if envelope is not None:
        attributes.update(
            {
                "messaging.message.id": str(envelope.id),
                "rae.event.type": envelope.type,
                "rae.tenant_id": envelope.tenant_id,
            }
        )
    return attributes


class KafkaConsumerLoop(BackgroundLoop):
    """Consume topics in a group, handle each record in a span, commit after success.

    A handler that keeps failing is retried `max_attempts` times with exponential backoff, then
    the record goes to the dead-letter topic with the error and is committed, so one poison
    message cannot stall its partition.

    With a `batch_handler`, the records a poll brought from one partition go to it in one call
    (each still in its own span); when that call fails, or a record is malformed, the records go
    one by one to `handler`, with the retries and the dead-letter topic above.

    A partition's log can be replaced under the consumer: a broker restarted without its data
    answers fetches at offsets beyond its new, shorter log with nothing (no out-of-range error),
    so the consumer would wait there, and skip what the new log holds below that offset. At every
    poll the loop compares each partition's high watermark with the highest it saw: lower means
    a new log, and the loop joins again as a new member (fresh metadata: the topic may have been
    created again with other partitions) and reads its partitions from the start, not from the
    group's offsets (some may have been committed, from records of the lost log, into the new
    one). A position beyond the high watermark goes back to the start of the partition. Offsets
    are committed only for records fetched under the current assignment (a broker that forgot
    the group hands the partitions out again) and never beyond the high watermark. The inboxes
    absorb what is read twice.

    Stopping finishes the record in hand, commits and leaves the group, within `stop_timeout_s`
    (`BackgroundLoop`): a service must stop within its grace period, whether a handler waits on a
    dependency that never answers or the broker does not answer the group's leave. A record
    cancelled at the deadline is not committed, so it is delivered again.
    """

    def __init__(
        self,
        connection: KafkaOptions | str,
        *,
        group_id: str,
        topics: Sequence[str],
        handler: Handler,
        batch_handler: BatchHandler | None = None,
        tracer_provider: TracerProvider | None = None,
        dlq: KafkaPublisher | None = None,
        topics_ready: asyncio.Event | None = None,
        event_registry: EventRegistry = registry,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        fetch_max_wait_ms: int = 500,
        max_attempts: int = 5,
        retry_backoff_s: float = 0.1,
        poll_timeout_ms: int = 200,
        reconnect_backoff_s: float = 0.5,
        stop_timeout_s: float = 3.0,
    ) -> None:
        self.options = kafka_options(connection)
        self.bootstrap_servers = self.options.bootstrap_servers
        self.group_id = group_id
        self.topics = list(topics)
        self.handler = handler
        self.batch_handler = batch_handler
        self.dlq = dlq
        # Set once the service's topics exist (`TopicSetup`): subscribing before would let a
        # broker that creates topics on first use make them with its own default partitions.
        self.topics_ready = topics_ready
        self.registry = event_registry
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.poll_timeout_ms = poll_timeout_ms
        self.reconnect_backoff_s = reconnect_backoff_s
        super().__init__(task_name=f"consumer {group_id}", stop_timeout_s=stop_timeout_s)
        self._tracer = _tracer(tracer_provider)
        self._consumer: AIOKafkaConsumer | None = None
        # The highest high watermark seen per partition, across reconnections: a log only grows.
        self._highwaters: dict[TopicPartition, int] = {}
        self._assignments = _Assignments(group_id)
        self.assigned = asyncio.Event()
        self.dead_lettered = 0
        self.logs_replaced = 0

    def _new_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            **self.options.client_kwargs(),
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            rebalance_timeout_ms=self.session_timeout_ms,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        self._assignments.consumer = consumer
        consumer.subscribe(self.topics, listener=self._assignments)
        return consumer

    async def _run(self) -> None:
        if self.topics_ready is not None and not await _first_of(self.topics_ready, self._stopping):
            return
        backoff = self.reconnect_backoff_s
        while not self._stopping.is_set():
            consumer = self._new_consumer()
            try:
                await consumer.start()
                self._consumer = consumer
                backoff = self.reconnect_backoff_s
                await self._poll(consumer)
            except _LogReplaced as replaced:
                self.logs_replaced += 1
                _log.warning(
                    "consumer %s: %s; joining again, reading the new logs from the start",
                    self.group_id,
                    replaced,
                )
                self._assignments.from_the_start = True
                backoff = 0.0
            except Exception:
                _log.warning("consumer %s lost the broker; reconnecting", self.group_id, exc_info=True)
            finally:
                self._consumer = None
                self.assigned.clear()
                with contextlib.suppress(Exception):
                    await consumer.stop()
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                backoff = min(max(backoff, self.reconnect_backoff_s) * 2, 10.0)

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=100)
            assignment = self._assignments.count
            if consumer.assignment():
                self.assigned.set()
            else:
                self.assigned.clear()
            # At every poll, before handling what it brought: a new log caught early is still
            # shorter than the lost one (producers publish again into it at once), and records
            # of the lost log are not worth an offset commit that would point into the new one.
            # Bounded: a position being reset waits for the broker, which may be down.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check_logs(consumer), timeout=5.0)
            for tp, records in batches.items():
                # One commit per partition and poll, of what was handled (a failure or a stop
                # ends the batch early): a record handled twice after a crash is what the
                # consumers' inboxes are for, and a commit per record cost the broker a round
                # trip for every event.
                handled: int | None = None
                try:
                    if len(records) > 1 and await self._handle_batch(records):
                        handled = records[-1].offset + 1
                        records = []
                    for record in records:
                        if self._stopping.is_set():
                            break
                        await self._handle(record)
                        handled = record.offset + 1
                finally:
                    if handled is not None and assignment == self._assignments.count:
                        await self._commit(consumer, tp, handled)
                    elif handled is not None:
                        # The group handed out its partitions again while these records were
                        # handled (another member, or a broker that forgot the group): their
                        # offset may belong to a log the broker no longer has, and the partition
                        # to another member. Whoever reads it next reads them again.
                        _log.info(
                            "consumer %s: %s/%d reassigned while handled; not committing",
                            self.group_id,
                            tp.topic,
                            tp.partition,
                        )
                if self._stopping.is_set():
                    return

    async def _check_logs(self, consumer: AIOKafkaConsumer) -> None:
        """Raise `_LogReplaced` when a partition's log shrank; rewind positions beyond its end."""
        beyond: list[TopicPartition] = []
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue  # not fetched yet
            seen = self._highwaters.get(tp)
            if seen is not None and high < seen:
                self._highwaters.clear()
                raise _LogReplaced(f"the log of {tp.topic}/{tp.partition} ends at {high}, it had {seen}")
            self._highwaters[tp] = high
            if await consumer.position(tp) > high:
                beyond.append(tp)
        if beyond:
            _log.warning(
                "consumer %s: positions beyond the end of %s (offsets of a lost log); reading them "
                "from the start",
                self.group_id,
                ", ".join(f"{tp.topic}/{tp.partition}" for tp in beyond),
            )
            await consumer.seek_to_beginning(*beyond)

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        high = consumer.highwater(tp)
        if high is not None and offset > high:
            # Records of a log the broker has lost since: that offset would skip the new one's.
            _log.warning(
                "consumer %s: not committing %s/%d at %d beyond the log's end %d",
                self.group_id,
                tp.topic,
                tp.partition,
                offset,
                high,
            )
            return
        await consumer.commit({tp: offset})
        self._assignments.committed.add(tp)

    def _process_span(self, record: ConsumerRecord[bytes, bytes], meta: ConsumedRecord) -> trace.Span:
        return self._tracer.start_span(
            f"{record.topic} process",
            context=extract_context(meta.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                **_messaging_attributes(record.topic, None),
                "messaging.consumer.group.name": self.group_id,
                "messaging.kafka.offset": record.offset,
                "messaging.destination.partition.id": str(record.partition),
            },
        )

    async def _handle_batch(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> bool:
        """The records in one `batch_handler` call; False when they must go one by one instead."""
        if self.batch_handler is None:
            return False
        events: list[ConsumedEvent] = []
        spans: list[trace.Span] = []
        try:
            for record in records:
                meta = _consumed(record)
                try:
                    envelope = self.registry.parse(record.value or b"")
                except ValueError:
                    return False  # one by one, where it goes to the dead-letter topic
                span = self._process_span(record, meta)
                spans.append(span)
                span.set_attributes(
                    {
                        **_messaging_attributes(record.topic, envelope),
                        "messaging.batch.message_count": len(records),
                    }
                )
                events.append(ConsumedEvent(envelope, meta, trace.set_span_in_context(span)))
            try:
                await self.batch_handler(events)
            except Exception as exc:
                _log.warning(
                    "batch handler failed for %d records of %s/%d (%s: %s); handling them one by one",
                    len(records),
                    records[0].topic,
                    records[0].partition,
                    type(exc).__name__,
                    exc,
                )
                for span in spans:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, "batch failed; handled one by one"))
                return False
            return True
        finally:
            for span in spans:
                span.end()

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        meta = _consumed(record)
        headers = meta.headers
        span = self._process_span(record, meta)
        with trace.use_span(span, end_on_exit=True):
            try:
                envelope = self.registry.parse(record.value or b"")
            except ValueError as exc:
                span.set_status(Status(StatusCode.ERROR, "malformed event"))
                await self._dead_letter(record, headers, f"malformed: {exc}", attempts=0)
                return
            span.set_attributes(_messaging_attributes(record.topic, envelope))
            delay = self.retry_backoff_s
            for attempt in range(1, self.max_attempts + 1):
                try:
                    await self.handler(envelope, meta)
                except Exception as exc:
                    span.record_exception(exc)
                    if attempt == self.max_attempts:
                        span.set_status(Status(StatusCode.ERROR, "handler failed"))
                        await self._dead_letter(record, headers, f"{type(exc).__name__}: {exc}", attempt)
                        return
                    _log.warning(
                        "handler failed for %s (attempt %d/%d)", envelope.id, attempt, self.max_attempts
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                else:
                    return

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], headers: dict[str, str], error: str, attempts: int
    ) -> None:
        if self.dlq is None:
            raise RuntimeError(f"no dead-letter publisher; cannot park record: {error}")
        dlq_headers = {
            **headers,
            "rae-dlq-error": error[:1000],
            "rae-dlq-source-topic": record.topic,
            "rae-dlq-source-partition": str(record.partition),
            "rae-dlq-source-offset": str(record.offset),
            "rae-dlq-consumer-group": self.group_id,
            "rae-dlq-attempts": str(attempts),
        }
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        await self.dlq.send_records([OutgoingRecord(TOPIC_DLQ, record.value or b"", key, dlq_headers)])
        self.dead_lettered += 1
        _log.error("record %s/%d@%d dead-lettered: %s", record.topic, record.partition, record.offset, error)


class KafkaBroadcastLoop(KafkaConsumerLoop):
    """Every replica reads every record from the moment it starts: no group, no commits.

    For cache invalidation across replicas, where what happened while a replica was down does
    not matter (its cache expires anyway) and group rebalances would only add delay."""

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *self.topics,
            **self.options.client_kwargs(),
            group_id=None,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:  # noqa: ARG002
        return None  # no group, nothing to commit to

    async def _dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes],
        headers: dict[str, str],  # noqa: ARG002
        error: str,
        attempts: int,  # noqa: ARG002
    ) -> None:
        _log.error("record %s/%d@%d dropped: %s", record.topic, record.partition, record.offset, error)


async def _first_of(wanted: asyncio.Event, stopping: asyncio.Event) -> bool:
    """Wait until `wanted` or `stopping` is set; True when `wanted` is."""
    waits = [asyncio.ensure_future(wanted.wait()), asyncio.ensure_future(stopping.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return wanted.is_set()


async def create_topics(
    connection: KafkaOptions | str, topics: Sequence[str], partitions: int | None = None
) -> None:
    """`ensure_topics`, with `partitions` instead of the options' when given (tests' own topics)."""
    options = kafka_options(connection)
    if partitions is not None:
        options = dataclasses.replace(options, topic_partitions=partitions)
    await ensure_topics(options, topics)


# Kafka's error codes in a CreateTopics answer that say what to fix.
_TOPIC_ALREADY_EXISTS = 36
_INVALID_REPLICATION_FACTOR = 38
_AUTHORIZATION_FAILED = (29, 31)  # topic, cluster


async def ensure_topics(
    connection: KafkaOptions | str, topics: Sequence[str], *, timeout_s: float = 10.0
) -> list[str]:
    """Create those of `topics` that do not exist, with the options' partitions and replication
    factor (one created meanwhile by another client is fine), and answer their names. An
    existing topic is left as it is (a partition count other than the options' is logged).

    With `create_topics` off in the options, a missing topic raises `TopicProblem` naming it; so
    does a replication factor above the cluster's broker count, or a broker refusing the
    creation for a reason retrying cannot cure. An unreachable broker raises what the client
    raised, within about `timeout_s`."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    options = kafka_options(connection)
    admin = AIOKafkaAdminClient(**options.client_kwargs(), request_timeout_ms=int(timeout_s * 1000))
    try:
        return await asyncio.wait_for(_ensure_topics(admin, options, topics, NewTopic), timeout=timeout_s)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _ensure_topics(
    admin: Any, options: KafkaOptions, topics: Sequence[str], new_topic: Any
) -> list[str]:
    from aiokafka.errors import for_code

    await admin.start()
    # Every topic: asking for some by name would create them on a broker that creates topics on
    # first use, with its own default partitions.
    partitions = {
        t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if t["error_code"] == 0
    }
    for topic in topics:
        if topic in partitions and partitions[topic] != options.topic_partitions:
            _log.info(
                "topic %s has %d partitions (KAFKA_TOPIC_PARTITIONS=%d); left as it is",
                topic,
                partitions[topic],
                options.topic_partitions,
            )
    missing = [t for t in dict.fromkeys(topics) if t not in partitions]
    if not missing:
        return []
    where = f"the Kafka cluster at {options.bootstrap_servers}"
    if not options.create_topics:
        raise TopicProblem(
            f"topics {', '.join(missing)} do not exist on {where} and KAFKA_CREATE_TOPICS=false: "
            "create them, or let the services create them (KAFKA_CREATE_TOPICS=true)"
        )
    brokers = len((await admin.describe_cluster())["brokers"])
    too_few = (
        f"KAFKA_TOPIC_REPLICATION_FACTOR={options.topic_replication_factor} is more than the {{}} "
        f"broker(s) of {where}: topics {', '.join(missing)} cannot be created; set it to at most "
        "the number of brokers"
    )
    if options.topic_replication_factor > brokers:
        raise TopicProblem(too_few.format(brokers))
    answer = await admin.create_topics(
        [
            new_topic(
                t,
                num_partitions=options.topic_partitions,
                replication_factor=options.topic_replication_factor,
            )
            for t in missing
        ]
    )
    for error in answer.topic_errors:
        topic, code, message = error[0], error[1], (error[2] if len(error) > 2 else None)
        if code in (0, _TOPIC_ALREADY_EXISTS):
            continue
        if code == _INVALID_REPLICATION_FACTOR:
            raise TopicProblem(too_few.format(brokers) + f" ({message})")
        kind = for_code(code)
        if code in _AUTHORIZATION_FAILED:
            raise TopicProblem(
                f"{where} refuses to create topic {topic} ({kind.__name__}: {message}): allow the "
                "service's Kafka user to create topics, or create them yourself and set "
                "KAFKA_CREATE_TOPICS=false"
            )
        if kind.retriable:
            raise kind(f"creating topic {topic}: {message}")
        raise TopicProblem(f"{where} refuses to create topic {topic}: {kind.__name__}: {message}")
    _log.info(
        "created topics %s (%d partitions, replication factor %d)",
        ", ".join(missing),
        options.topic_partitions,
        options.topic_replication_factor,
    )
    return missing


class TopicSetup(BackgroundLoop):
    """A service's topics made to exist (or found to, KAFKA_CREATE_TOPICS=false) from start-up
    on, without holding the start-up: tried at once, then again with backoff (up to
    `max_backoff_s`) while the broker is away or the topics cannot be had, until they are.

    `ready` is set once they exist (the consumers wait for it); `probe` (readiness) fails while
    a `TopicProblem` stands in the way, not while the broker is merely unreachable."""

    def __init__(
        self,
        options: KafkaOptions,
        topics: Sequence[str],
        *,
        max_backoff_s: float = 30.0,
        stop_timeout_s: float = 3.0,
    ) -> None:
        self.options = options
        self.topics = list(topics)
        self.max_backoff_s = max_backoff_s
        self.ready = asyncio.Event()
        self.problem: str | None = None
        self.created: list[str] = []
        self._answered = asyncio.Event()
        super().__init__(task_name="kafka topic set-up", stop_timeout_s=stop_timeout_s)

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self.created = await ensure_topics(self.options, self.topics)
            except TopicProblem as exc:
                if str(exc) != self.problem:
                    _log.error("%s", exc)
                self.problem = str(exc)
            except Exception as exc:
                self.problem = None
                _log.warning(
                    "cannot set up topics %s at %s yet (%s: %s); trying again in %g s",
                    ", ".join(self.topics),
                    self.options.bootstrap_servers,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
            else:
                self.problem = None
                self.ready.set()
                self._answered.set()
                return
            self._answered.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def probe(self) -> None:
        """Readiness: a problem an operator must fix is "not ready". Waits for the first
        attempt's answer (the readiness check's timeout bounds the wait)."""
        await self._answered.wait()
        if self.problem is not None:
            raise TopicProblem(self.problem)
