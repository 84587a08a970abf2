"""Kafka client factories and offset helpers shared by the API, the loader, replays and the DAGs.

Producers use librdkafka's ``murmur2_random`` partitioner: the same partition for a key as Java
clients and Kafka's own tools pick, so a device's scans land in one partition whichever client
wrote them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from quacknet.errors import InvalidInput, Unavailable
from quacknet.retry import Backoff
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


@dataclass(frozen=True)
class PartitionOffsets:
    partition: int
    committed: int | None  # None: the group has committed nothing here
    low: int
    high: int


def resolve_partitions(consumer: Consumer, topic: str, wanted: list[int] | None = None,
                       timeout_s: float = 10) -> list[int]:
    """The partitions of ``topic`` to act on: ``wanted`` (each must exist), or all of them."""
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as exc:
        raise Unavailable(f"Kafka did not answer for topic {topic}: {exc}") from exc
    if meta is None or (meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise InvalidInput(f"topic {topic} does not exist")
    if meta.error is not None:
        raise Unavailable(f"Kafka has no usable metadata for topic {topic}: {meta.error.str()}")
    unknown = sorted(set(wanted or ()) - set(meta.partitions))
    if unknown:
        raise InvalidInput(f"topic {topic} has no partition(s) {unknown} (it has 0..{len(meta.partitions) - 1})")
    return sorted(wanted) if wanted else sorted(meta.partitions)


def partition_offsets(consumer: Consumer, topic: str, partitions: list[int] | None = None,
                      timeout_s: float = 10) -> list[PartitionOffsets]:
    """Per partition of ``topic`` (or of ``partitions``): what the consumer's group has committed,
    and the log's watermarks."""
    parts = resolve_partitions(consumer, topic, partitions, timeout_s)
    committed = _committed(consumer, [TopicPartition(topic, p) for p in parts], timeout_s)
    return [PartitionOffsets(tp.partition, tp.offset if tp.offset >= 0 else None,
                             *consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout_s))
            for tp in committed]


def _committed(consumer: Consumer, tps: list[TopicPartition], timeout_s: float) -> list[TopicPartition]:
    """The group's commits; a coordinator that is moving or still loading (a broker just started
    or failed over) is waited for, up to ``timeout_s``, then ``Unavailable``."""
    backoff = Backoff(0.2, 2.0, deadline_s=timeout_s)
    while True:
        try:
            return consumer.committed(tps, timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is None or not (error.retriable() or error.code() in _COORDINATOR_MOVING):
                raise
            if not backoff.sleep():
                raise Unavailable(f"Kafka's group coordinator did not answer: {error.str()}") from exc


_COORDINATOR_MOVING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                       KafkaError.COORDINATOR_NOT_AVAILABLE}


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
