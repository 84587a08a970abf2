from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from quacknet import warehouse
from quacknet.devstack.supervisor import free_port
from quacknet.warehouse.migrations import migrate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def admin(stack) -> AdminClient:
    return AdminClient({"bootstrap.servers": stack.kafka_bootstrap_servers})


@pytest.fixture
def topic(admin, unique_name):
    """A fresh 6-partition topic for one test, deleted afterwards."""
    name = unique_name.replace("_", ".")
    admin.create_topics([NewTopic(name, num_partitions=6, replication_factor=1)])[name].result(timeout=30)
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


def ch_client(settings, **kwargs):
    return warehouse.client(settings, **kwargs)


@pytest.fixture
def ch(stack):
    client = ch_client(stack)
    yield client
    client.close()


@pytest.fixture
def database(ch, unique_name):
    """A fresh ClickHouse database for one test, dropped afterwards."""
    ch.command(f"CREATE DATABASE {unique_name}")
    yield unique_name
    ch.command(f"DROP DATABASE IF EXISTS {unique_name} SYNC")


def read_topic(settings, topic: str, timeout_s: float = 30.0) -> list:
    """Every message on the topic now (from each partition's start to its end offset)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "test-reader",
                         "enable.auto.commit": False})
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


@pytest.fixture
def lsettings(stack, admin, ch, topic, database, unique_name):
    migrate(ch, database)  # the loader migrates too; the tests read before it may have
    dlq = f"{topic}.dlq"
    admin.create_topics([NewTopic(dlq, 3, 1)])[dlq].result(timeout=30)
    yield stack.model_copy(update={
        "scans_topic": topic, "dlq_topic": dlq, "clickhouse_database": database, "loader_batch_seconds": 0.3,
        "loader_batch_rows": 5_000, "loader_group": f"loader-{unique_name}", "loader_metrics_port": free_port(),
    })
    admin.delete_topics([dlq])
