"""Consumer lag of a group, per partition: the end of the log minus the group's committed offset."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from rae_common.kafka_options import KafkaOptions

__all__ = ["ConsumerLag"]


class ConsumerLag:
    """Reads a group's committed offsets without joining it (no subscription), so sampling never
    triggers a rebalance of the members doing the work."""

    def __init__(
        self, options: KafkaOptions, group_id: str, topics: Sequence[str], timeout_s: float = 5.0
    ) -> None:
        self.options = options
        self.group_id = group_id
        self.topics = list(topics)
        self.timeout_s = timeout_s
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self) -> dict[tuple[str, int], int]:
        """{(topic, partition): records not yet committed by the group}; raises when the broker fails."""
        try:
            return await asyncio.wait_for(self._read(), timeout=self.timeout_s)
        except BaseException:
            await self.stop()
            raise

    async def _read(self) -> dict[tuple[str, int], int]:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self.options.client_kwargs(),
                group_id=self.group_id,
                client_id=f"{self.group_id}-lag",
                enable_auto_commit=False,
            )
            self._consumer = consumer
            await consumer.start()
        consumer = self._consumer
        await consumer.topics()  # refreshes the metadata naming each topic's partitions
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        if not partitions:
            return {}
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        lag: dict[tuple[str, int], int] = {}
        for tp in partitions:
            committed = await consumer.committed(tp)
            position = starts[tp] if committed is None else max(committed, starts[tp])
            lag[(tp.topic, tp.partition)] = max(0, ends[tp] - position)
        return lag

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
