"""Reading a Kafka cluster's state for tests: who leads what, who is in sync, who leads the quorum."""

from __future__ import annotations

import collections
import logging

from confluent_kafka import TopicPartition

from quacknet import kafka as qkafka

_quiet = logging.getLogger("tests.cluster")
_quiet.setLevel(logging.CRITICAL)


def _metadata(settings, timeout_s: float = 5):
    return qkafka.admin(settings, logger=_quiet).list_topics(timeout=timeout_s)


def leaders(settings, topic: str) -> dict[int, int]:
    """Partition -> leader (-1: none) as the brokers' metadata says now."""
    meta = _metadata(settings).topics[topic]
    return {p: m.leader for p, m in sorted(meta.partitions.items())}


def most_leading(settings, topic: str) -> int:
    """The broker that leads the most partitions of ``topic``."""
    return collections.Counter(leaders(settings, topic).values()).most_common(1)[0][0]


def in_sync(settings, topics: list[str]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (ISR size, replicas)."""
    meta = _metadata(settings).topics
    return {(t, p): (len(m.isrs), len(m.replicas)) for t in topics for p, m in sorted(meta[t].partitions.items())}


def have_topics(settings, topics: list[str]) -> bool:
    """Every one of ``topics`` in the metadata, each partition with a leader."""
    meta = _metadata(settings).topics
    return all(t in meta and meta[t].error is None and meta[t].partitions
               and all(m.leader >= 0 for m in meta[t].partitions.values()) for t in topics)


def brokers(settings) -> set[int]:
    return set(_metadata(settings).brokers)


def quorum(settings) -> tuple[int, dict[int, int]]:
    """(leader id, {voter: log end offset}) of the KRaft controller quorum."""
    client = qkafka.python_admin(settings, client_id="tests-quorum", request_timeout_ms=5000)
    try:
        [part] = [p for t in client.describe_metadata_quorum()["topics"] for p in t["partitions"]]
        return part["leader_id"], {v["replica_id"]: v["log_end_offset"] for v in part["current_voters"]}
    finally:
        client.close()


def committed_total(settings, group: str, topic: str, partitions: int) -> int:
    """The sum of the group's committed offsets over the topic's partitions."""
    consumer = qkafka.consumer(settings, group, logger=_quiet)
    try:
        got = qkafka.committed_offsets(consumer, [TopicPartition(topic, p) for p in range(partitions)], 20)
        return sum(max(tp.offset, 0) for tp in got)
    finally:
        consumer.close()
