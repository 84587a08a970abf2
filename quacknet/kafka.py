"""Kafka client factories shared by the API, the loader, the DAGs and the tests.

Producers use librdkafka's ``murmur2_random`` partitioner: the same partition for a
key as Java clients and Kafka's own tools pick, so a device's scans land in one
partition whichever client wrote them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from quacknet.settings import Settings


_rdkafka_log = logging.getLogger("librdkafka")


def _base(settings: Settings) -> dict[str, Any]:
    # librdkafka's own log lines go through Python logging (structured), not raw stderr.
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, "logger": _rdkafka_log}


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {**_base(settings), "acks": "all", "enable.idempotence": True, "partitioner": "murmur2_random",
            "linger.ms": 5, "compression.type": "lz4", **overrides}


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return {**_base(settings), "group.id": group_id, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed", **overrides}


def producer(settings: Settings, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, **overrides))


def consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(consumer_config(settings, group_id, **overrides))


def admin(settings: Settings, **overrides: Any) -> AdminClient:
    return AdminClient({**_base(settings), **overrides})


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit int."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    full = len(data) & ~3
    for i in range(0, full, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = data[full:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


@dataclass(frozen=True)
class PartitionOffsets:
    partition: int
    committed: int | None  # None: the group has committed nothing here
    low: int
    high: int


def partition_offsets(consumer: Consumer, topic: str, timeout_s: float = 10) -> list[PartitionOffsets]:
    """Per partition of ``topic``: what the consumer's group has committed, and the log's watermarks."""
    parts = sorted(consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions)
    committed = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=timeout_s)
    return [PartitionOffsets(tp.partition, tp.offset if tp.offset >= 0 else None,
                             *consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout_s))
            for tp in committed]


def timestamp_at(consumer: Consumer, topic: str, partition: int, offset: int, timeout_s: float = 10) -> int | None:
    """The timestamp (ms) of the message at ``offset``, read by assigning the consumer there for a
    moment; None when it cannot be read in time."""
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg.timestamp()[1]
        return None
    finally:
        consumer.unassign()


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-empty key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
