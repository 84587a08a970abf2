"""The retention audit on the real broker: a wrong retention and a lag near the horizon are flagged."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from quacknet import kafka as qkafka
from quacknet import topics
from quacknet.ops import audit
from quacknet.settings import HOUR_MS
from quacknet.warehouse.migrations import migrate


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
        audit.store(ch, database, dt.datetime.now(dt.UTC), [late, fine])
        assert ch.query(f"SELECT countIf(NOT ok), countIf(ok) FROM {database}.audit_findings").result_rows == [(1, 1)]
    finally:
        admin.delete_topics([name])


def test_log_dirs_report_the_topics_bytes_and_the_volume_and_an_undersized_budget_is_flagged(stack, admin, topic, caplog):
    producer = qkafka.producer(stack)
    for i in range(600):
        producer.produce(topic, key=f"k{i}".encode(), value=os.urandom(1000))  # incompressible
    assert producer.flush(10) == 0
    with caplog.at_level(logging.INFO):
        brokers = audit.log_dirs(stack)
    # kafka-python's connection chatter stays out of a task's log; its warnings would not
    assert not [r for r in caplog.records if r.name.startswith("kafka") and r.levelno < logging.WARNING]
    log_dirs = [d for b in brokers for d in b["log_dirs"]]
    assert len(brokers) == len(log_dirs) == stack.kafka_nodes  # one log dir per node
    ours = [p for d in log_dirs for t in d["topics"] if t["name"] == topic for p in t["partitions"]]
    assert len(ours) == 6 and sum(p["partition_size"] for p in ours) >= 600_000  # one copy of each partition
    assert all(0 < d["usable_bytes"] < d["total_bytes"] for d in log_dirs)
    findings = audit.disk_findings(brokers, budget_bytes=100_000, min_free_ratio=0.0)
    uses = [f for f in findings if f.check == "disk_use"]
    frees = [f for f in findings if f.check == "disk_free"]
    assert len(uses) == len(frees) == stack.kafka_nodes and sum(f.value for f in uses) >= 600_000
    assert all(not f.ok and f.limit == 100_000 for f in uses if f.value > 100_000) and not all(f.ok for f in uses)
    assert all(f.ok and 0 < f.value < 1 for f in frees)


def test_completeness_finds_offsets_skipped_by_a_reset_and_a_replay_closes_the_gap(lsettings, ch):
    from quacknet import replay
    from tests.support.kafka import end_offsets, produce
    from tests.support.loader import LoaderThread
    from tests.support.waiting import wait_for

    db, topic, group = lsettings.clickhouse_database, lsettings.scans_topic, lsettings.loader_group
    ids = produce(lsettings, 300)
    again = ids[:20]  # phone retries: the same scans again, at new offsets
    _produce_again(lsettings, again)
    loader = LoaderThread(lsettings)
    try:
        wait_for(lambda: _committed_total(lsettings, group) == 320, 60, "the loader to commit 320 messages")
    finally:
        loader.stop()
    ch.command(f"OPTIMIZE TABLE {db}.scans_store FINAL")  # merges drop the retries' offsets from the rows
    assert ch.command(f"SELECT count() FROM {db}.scans_store") == 300
    findings = audit.completeness_findings(lsettings, ch, db, group, topic)
    assert len(findings) == 6 and all(f.ok for f in findings), audit.violations_message(findings)

    before = end_offsets(lsettings)
    produce(lsettings, 120)
    after = end_offsets(lsettings)
    consumer = qkafka.consumer(lsettings, group)  # an operator's reset to latest: 120 scans skipped
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in after.items()], asynchronous=False)
    consumer.close()
    findings = audit.completeness_findings(lsettings, ch, db, group, topic)
    bad = {f.partition: f for f in findings if not f.ok}
    assert sum(f.value for f in bad.values()) == 120
    for p, f in bad.items():
        assert f.value == after[p] - before[p]
        assert f"{topic}[{p}]: {after[p] - before[p]} of offsets" in f.message and f"{before[p]}..{after[p] - 1}" in f.message

    ranges = replay.plan(lsettings, topic, offsets={p: (before[p], after[p]) for p in range(6)})
    replay.copy(lsettings, topic, ranges)
    findings = audit.completeness_findings(lsettings, ch, db, group, topic)
    assert all(f.ok for f in findings), audit.violations_message(findings)
    assert ch.command(f"SELECT count() FROM {db}.scans") == 420


def _produce_again(settings, scan_ids: list[str]) -> None:
    from tests.support.kafka import read_topic

    by_id = {}
    for msg in read_topic(settings, settings.scans_topic):
        by_id[msg.value().split(b'"scan_id":"')[1][:36].decode()] = msg
    producer = qkafka.producer(settings)
    for sid in scan_ids:
        producer.produce(settings.scans_topic, key=by_id[sid].key(), value=by_id[sid].value())
    assert producer.flush(10) == 0


def _committed_total(settings, group: str) -> int:
    from tests.support.kafka import committed

    return sum(committed(settings, group).values())
