"""The real Apache Kafka broker of the local stack, judged by Kafka's own Java tools."""

from __future__ import annotations

import re
import uuid

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import ConfigResource

from devtools import kafka as devkafka
from quacknet import kafka as qkafka
from tests.support.partitioning import partition_for_key


def _consume_all(settings, topic: str, expected: int, group: str | None = None, commit: bool = False):
    consumer = qkafka.consumer(settings, group or f"reader-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    messages = []
    try:
        idle = 0
        while len(messages) < expected and idle < 30:
            batch = consumer.consume(num_messages=1000, timeout=1.0)
            idle = 0 if batch else idle + 1
            for msg in batch:
                assert msg.error() is None, msg.error()
                messages.append(msg)
        if commit:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return messages


def test_keyed_messages_land_where_kafkas_default_partitioner_puts_them(stack, topic):
    keys = [f"device-{i:03d}" for i in range(60)]
    delivered = []
    producer = qkafka.producer(stack)
    for n in range(5):
        for key in keys:
            producer.produce(topic, key=key.encode(), value=f"{key}/{n}".encode(),
                             on_delivery=lambda err, msg: delivered.append((err, msg.key(), msg.partition())))
    assert producer.flush(30) == 0
    assert len(delivered) == 300 and all(err is None for err, _, _ in delivered)
    for _, key, partition in delivered:
        assert partition == partition_for_key(key, 6)

    # Kafka's own Java console producer (default partitioner) writes the same keys.
    lines = "".join(f"{key}:java-{key}\n" for key in keys)
    done = devkafka.run_tool_input(stack, "kafka-console-producer", [
        "--bootstrap-server", stack.kafka_bootstrap_servers, "--topic", topic,
        "--property", "parse.key=true", "--property", "key.separator=:",
    ], lines)
    assert done.returncode == 0, done.stderr

    messages = _consume_all(stack, topic, 360)
    assert len(messages) == 360
    partitions_of_key: dict[bytes, set[int]] = {}
    for msg in messages:
        partitions_of_key.setdefault(msg.key(), set()).add(msg.partition())
    assert len(partitions_of_key) == 60
    assert all(len(p) == 1 for p in partitions_of_key.values()), "a key was split across partitions"
    assert len({p for ps in partitions_of_key.values() for p in ps}) == 6


def test_committed_offsets_are_what_kafka_consumer_groups_reports(stack, topic):
    producer = qkafka.producer(stack)
    for i in range(500):
        producer.produce(topic, key=f"k{i % 37}".encode(), value=b"x")
    assert producer.flush(30) == 0
    group = f"judge-{uuid.uuid4().hex[:8]}"
    assert len(_consume_all(stack, topic, 500, group=group, commit=True)) == 500

    done = devkafka.run_tool(stack, "kafka-consumer-groups", [
        "--bootstrap-server", stack.kafka_bootstrap_servers, "--describe", "--group", group])
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(group)]
    by_partition = {int(r[2]): (int(r[3]), int(r[4]), int(r[5])) for r in rows if r[1] == topic}
    assert sorted(by_partition) == list(range(6))
    assert all(current == end and lag == 0 for current, end, lag in by_partition.values())
    assert sum(current for current, _, _ in by_partition.values()) == 500

    # and the same numbers through the client API
    consumer = qkafka.consumer(stack, group)
    committed = consumer.committed([TopicPartition(topic, p) for p in range(6)], timeout=10)
    consumer.close()
    assert {tp.partition: tp.offset for tp in committed} == {p: v[0] for p, v in by_partition.items()}


def test_topics_are_never_auto_created(stack, admin, unique_name):
    name = unique_name.replace("_", ".")
    errors = []
    producer = qkafka.producer(stack, **{"message.timeout.ms": 3000})
    producer.produce(name, value=b"typo", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._MSG_TIMED_OUT, KafkaError._UNKNOWN_TOPIC)
    assert name not in admin.list_topics(timeout=10).topics


def test_broker_runs_kraft_with_bounded_retention(stack, admin):
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")  # node 1 of however many
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["auto.create.topics.enable"].value == "false"
    assert configs["log.retention.hours"].value == str(stack.scans_retention_hours)
    assert int(configs["log.retention.bytes"].value) == stack.retention_bytes_per_partition > 0
    quorum = devkafka.run_tool(stack, "kafka-metadata-quorum",
                               ["--bootstrap-server", stack.kafka_bootstrap_servers, "describe", "--status"])
    assert quorum.returncode == 0, quorum.stderr
    leader = int(re.search(r"LeaderId:\s+(\d+)", quorum.stdout).group(1))
    assert 1 <= leader <= stack.kafka_nodes  # one of the stack's own voters (node 1 on one node)
