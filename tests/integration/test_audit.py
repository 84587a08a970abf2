"""The retention audit on the real broker: a wrong retention and a lag near the horizon are flagged."""

from __future__ import annotations

import datetime as dt
import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from quacknet import audit, topics
from quacknet import kafka as qkafka
from quacknet.warehouse.migrations import migrate

HOUR_MS = 3_600_000


def test_a_deliberately_wrong_retention_is_flagged_with_its_numbers(stack, admin, topic):
    spec = topics.TopicSpec(topic, 6, {"retention.ms": str(168 * HOUR_MS)})
    findings = audit.retention_findings([spec], topics.describe(admin, [topic]))
    assert all(f.ok for f in findings)  # broker default is 168 h
    topics.reconcile(admin, [topics.TopicSpec(topic, 6, {"retention.ms": str(HOUR_MS)})])  # someone "fixed" it by hand
    time.sleep(1)
    findings = audit.retention_findings([spec], topics.describe(admin, [topic]))
    assert audit.violations_message(findings) == (
        f"1 retention audit violation(s):\n- [retention] {topic}: retention.ms is {HOUR_MS}, policy says {168 * HOUR_MS}")


def test_a_group_whose_lag_nears_the_retention_horizon_is_flagged(stack, admin, unique_name, ch, database):
    name = unique_name.replace("_", ".")
    admin.create_topics([NewTopic(name, 1, 1, config={"retention.ms": str(2 * HOUR_MS)})])[name].result(timeout=30)
    producer = qkafka.producer(stack)
    now_ms = int(time.time() * 1000)
    producer.produce(name, key=b"k", value=b"old", timestamp=now_ms - int(1.9 * HOUR_MS))  # expires in ~6 min
    producer.produce(name, key=b"k", value=b"new", timestamp=now_ms)
    producer.flush(10)
    lagging, caught_up = f"lagging-{unique_name}", f"current-{unique_name}"
    consumer = qkafka.consumer(stack, caught_up)
    consumer.commit(offsets=[TopicPartition(name, 0, 2)], asynchronous=False)
    consumer.close()
    try:
        [late] = audit.lag_horizon_findings(stack, lagging, name, 2 * HOUR_MS, min_hours=1)
        assert not late.ok and 0.05 < late.value < 0.15
        assert f"{name}[0]: group {lagging} lags 2 messages; its oldest unread message expires in" in late.message
        [fine] = audit.lag_horizon_findings(stack, caught_up, name, 2 * HOUR_MS, min_hours=1)
        assert fine.ok and fine.value == 2.0  # caught up: the whole retention is left
        migrate(ch, database)
        audit.store(ch, database, dt.datetime.now(dt.timezone.utc), [late, fine])
        assert ch.query(f"SELECT countIf(NOT ok), countIf(ok) FROM {database}.audit_findings").result_rows == [(1, 1)]
    finally:
        admin.delete_topics([name])
