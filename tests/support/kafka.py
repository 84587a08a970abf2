"""Producing scans to, and reading them back from, the real broker."""

from __future__ import annotations

import datetime as dt
import random
import time

from confluent_kafka import TopicPartition

from devtools.samples import scan_payload
from quacknet import kafka as qkafka
from quacknet.scan import Scan, encode, validate_submission


def produce(settings, n: int, rng: random.Random | None = None, devices: int = 50) -> list[str]:
    """``n`` valid scans onto the settings' scans topic; their ids in order."""
    rng = rng or random.Random()
    now = dt.datetime.now(dt.UTC)
    producer = qkafka.producer(settings)
    ids = []
    for i in range(n):
        scan = Scan.received(validate_submission(scan_payload(f"phone-{i % devices}", rng=rng, now=now), now), now)
        producer.produce(settings.scans_topic, key=scan.device_id.encode(), value=encode(scan))
        ids.append(str(scan.scan_id))
        if i % 5000 == 4999:
            producer.poll(0)
    assert producer.flush(30) == 0
    return ids


def read_topic(settings, topic: str, timeout_s: float = 30.0) -> list:
    """Every message on the topic now (from each partition's start to its end offset)."""
    consumer = qkafka.consumer(settings, "test-reader")
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        assignment = []
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        consumer.assign(assignment)
        messages, deadline = [], time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                messages.append(msg)
                if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                    ends.pop(msg.partition(), None)
        assert not ends, f"could not read partitions {sorted(ends)} to their end in {timeout_s}s"
        return messages
    finally:
        consumer.close()


def committed(settings, group: str) -> dict[int, int]:
    consumer = qkafka.consumer(settings, group)
    try:
        parts = [TopicPartition(settings.scans_topic, p) for p in range(settings.scans_partitions)]
        # a partition with nothing committed reports OFFSET_INVALID (-1001): nothing consumed, i.e. 0
        return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def end_offsets(settings) -> dict[int, int]:
    consumer = qkafka.consumer(settings, "watermarks")
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(settings.scans_topic, p), timeout=10)[1]
                for p in range(settings.scans_partitions)}
    finally:
        consumer.close()
