"""The loader on the real broker and the real ClickHouse engine: exact counts, whatever happens."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from quacknet import kafka as qkafka
from quacknet.devstack.services import CLICKHOUSE
from quacknet.devstack.supervisor import Supervisor, free_port
from quacknet.loader.run import Loader
from quacknet.samples import scan_payload
from quacknet.scan import Scan, encode, validate_submission
from quacknet.warehouse import client as ch_client
from quacknet.warehouse.migrations import migrate
from tests.integration.conftest import read_topic


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


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


def produce(settings, n: int, rng: random.Random | None = None, devices: int = 50) -> list[str]:
    rng = rng or random.Random()
    now = dt.datetime.now(dt.timezone.utc)
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


def count(ch, settings) -> int:
    return ch.command(f"SELECT count() FROM {settings.clickhouse_database}.scans")


def stored_ids(ch, settings) -> list[str]:
    return [str(r[0]) for r in ch.query(f"SELECT scan_id FROM {settings.clickhouse_database}.scans").result_rows]


def committed(settings, group: str) -> dict[int, int]:
    consumer = qkafka.consumer(settings, group)
    try:
        parts = [TopicPartition(settings.scans_topic, p) for p in range(6)]
        # a partition with nothing committed reports OFFSET_INVALID (-1001): nothing consumed, i.e. 0
        return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def end_offsets(settings) -> dict[int, int]:
    consumer = qkafka.consumer(settings, "watermarks")
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(settings.scans_topic, p), timeout=10)[1] for p in range(6)}
    finally:
        consumer.close()


class LoaderThread:
    def __init__(self, settings, group: str | None = None):
        self.loader = Loader(settings, group=group)
        self.thread = threading.Thread(target=self.loader.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.loader.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def loader_process(settings) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quacknet.loader"], env={**os.environ, **settings.to_env()},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_normal_run_stores_every_scan_once_and_commits_behind_it(lsettings, ch):
    ids = produce(lsettings, 6000)
    loader = LoaderThread(lsettings)
    try:
        _wait_for(lambda: count(ch, lsettings) == 6000, 60, "6000 rows")
    finally:
        loader.stop()
    assert sorted(stored_ids(ch, lsettings)) == sorted(ids)
    assert committed(lsettings, lsettings.loader_group) == end_offsets(lsettings)
    lineage = ch.query(f"SELECT kafka_partition, count(), max(kafka_offset) FROM {lsettings.clickhouse_database}.scans "
                       "GROUP BY kafka_partition").result_rows
    assert {p: (n, last + 1) for p, n, last in lineage} == {p: (e, e) for p, e in end_offsets(lsettings).items() if e}


def test_poison_messages_go_to_the_dead_letter_topic_with_their_origin(lsettings, ch):
    good = produce(lsettings, 100)
    producer = qkafka.producer(lsettings)
    bad_scan = json.loads(encode(Scan.received(validate_submission(scan_payload(), dt.datetime.now(dt.timezone.utc)),
                                               dt.datetime.now(dt.timezone.utc))))
    poison = {
        "undecodable": b"\x00not json at all",
        "schema_invalid": json.dumps({**bad_scan, "lat": 999}).encode(),
        "unknown_schema_version": json.dumps({**bad_scan, "schema_version": 2}).encode(),
    }
    for reason, value in poison.items():
        producer.produce(lsettings.scans_topic, key=reason.encode(), value=value)
    assert producer.flush(10) == 0
    more = produce(lsettings, 100)
    loader = LoaderThread(lsettings)
    try:
        _wait_for(lambda: count(ch, lsettings) == 200, 60, "the good rows")
        _wait_for(lambda: committed(lsettings, lsettings.loader_group) == end_offsets(lsettings), 30, "commit past the poison")
    finally:
        loader.stop()
    assert sorted(stored_ids(ch, lsettings)) == sorted(good + more)
    dead = read_topic(lsettings, lsettings.dlq_topic)
    assert len(dead) == 3
    sources = {(m.partition(), m.offset()): m for m in read_topic(lsettings, lsettings.scans_topic)}
    for msg in dead:
        headers = dict(msg.headers())
        reason = headers["quacknet.error.reason"].decode()
        assert msg.value() == poison[reason] and msg.key() == reason.encode()
        origin = sources[(int(headers["quacknet.source.partition"]), int(headers["quacknet.source.offset"]))]
        assert origin.value() == msg.value() and headers["quacknet.source.topic"].decode() == lsettings.scans_topic
        assert headers["quacknet.error.message"]


def test_the_same_scan_twice_is_counted_once(lsettings, ch):
    now = dt.datetime.now(dt.timezone.utc)
    scan_in = validate_submission(scan_payload("twice"), now)
    first = Scan.received(scan_in, now)
    retry = Scan.received(scan_in, now + dt.timedelta(seconds=5))  # the phone retried: new receive time
    producer = qkafka.producer(lsettings)
    for scan in (first, first, retry):  # plus a spool re-send of the first
        producer.produce(lsettings.scans_topic, key=b"twice", value=encode(scan))
    producer.flush(10)
    loader = LoaderThread(lsettings)
    try:
        _wait_for(lambda: committed(lsettings, lsettings.loader_group) == end_offsets(lsettings), 30, "commit")
    finally:
        loader.stop()
    rows = ch.query(f"SELECT scan_id, received_at FROM {lsettings.clickhouse_database}.scans").result_rows
    assert len(rows) == 1 and str(rows[0][0]) == str(scan_in.scan_id)
    assert rows[0][1].replace(tzinfo=dt.timezone.utc) == retry.received_at  # the latest copy wins


def test_kill_9_at_random_moments_loses_nothing_and_doubles_nothing(lsettings, ch):
    rng = random.Random(42)
    ids: list[str] = []
    producing = threading.Thread(target=lambda: [ids.extend(produce(lsettings, 2500, rng)) or time.sleep(0.3)
                                                 for _ in range(12)])
    producing.start()
    kills = 0
    try:
        for _ in range(4):
            proc = loader_process(lsettings)
            time.sleep(rng.uniform(2.0, 4.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
        producing.join(timeout=120)
        proc = loader_process(lsettings)
        _wait_for(lambda: count(ch, lsettings) == len(ids), 120, f"{len(ids)} rows after {kills} kills")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        producing.join(timeout=120)
    assert kills == 4 and len(ids) == 30_000
    assert sorted(stored_ids(ch, lsettings)) == sorted(ids)
    assert committed(lsettings, lsettings.loader_group) == end_offsets(lsettings)


def test_a_second_loader_joining_rebalances_without_loss_or_doubles(lsettings, ch):
    ids = produce(lsettings, 10_000)
    first = LoaderThread(lsettings)
    second = None
    try:
        _wait_for(lambda: count(ch, lsettings) > 0, 60, "the first loader to store something")
        second = LoaderThread(lsettings)
        ids += produce(lsettings, 10_000)
        _wait_for(lambda: count(ch, lsettings) == 20_000, 120, "20000 rows with two loaders")
    finally:
        if second:
            second.stop()
        first.stop()
    assert sorted(stored_ids(ch, lsettings)) == sorted(ids)
    assert committed(lsettings, lsettings.loader_group) == end_offsets(lsettings)


def test_sigterm_stores_and_commits_what_was_consumed(lsettings, ch):
    produce(lsettings, 8000)
    proc = loader_process(lsettings)
    _wait_for(lambda: count(ch, lsettings) > 0, 60, "the loader to start storing")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    done = committed(lsettings, lsettings.loader_group)
    per_partition = dict(ch.query(f"SELECT kafka_partition, count() FROM {lsettings.clickhouse_database}.scans "
                                  "GROUP BY kafka_partition").result_rows)
    assert {p: o for p, o in done.items() if o > 0} == per_partition  # committed exactly up to what is stored


def test_another_consumer_group_reads_the_same_topic_independently(lsettings, ch):
    ids = produce(lsettings, 3000)
    loader = LoaderThread(lsettings)
    analytics = qkafka.consumer(lsettings, f"analytics-{uuid.uuid4().hex[:6]}")
    analytics.subscribe([lsettings.scans_topic])
    seen = []
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 3000 and time.monotonic() < deadline:
            seen += [m for m in analytics.consume(1000, timeout=0.5) if m.error() is None]
        analytics.commit(asynchronous=False)
        _wait_for(lambda: count(ch, lsettings) == 3000, 60, "the loader")
    finally:
        analytics.close()
        loader.stop()
    assert len(seen) == 3000  # the analytics group saw everything, as did the loader
    assert sorted(stored_ids(ch, lsettings)) == sorted(ids)
    assert committed(lsettings, lsettings.loader_group) == end_offsets(lsettings)


def test_clickhouse_down_for_a_while_then_back(lsettings, tmp_path):
    own = lsettings.model_copy(update={"home": tmp_path / "gw", "clickhouse_url": f"http://127.0.0.1:{free_port()}",
                                       "loader_retry_max_s": 1.0})
    sup = Supervisor(own)
    sup.start(CLICKHOUSE)
    client = ch_client(own)
    migrate(client, own.clickhouse_database)
    ids = produce(own, 3000)
    loader = LoaderThread(own)
    try:
        _wait_for(lambda: count(client, own) == 3000, 60, "the first rows")
        sup.stop(CLICKHOUSE)  # ClickHouse goes away while scans keep coming
        ids += produce(own, 3000)
        time.sleep(3)
        assert loader.loader.metrics.insert_failures._value.get() > 0
        sup.start(CLICKHOUSE)
        client = ch_client(own)
        _wait_for(lambda: count(client, own) == 6000, 90, "the loader to recover by itself")
    finally:
        loader.stop()
        sup.stop(CLICKHOUSE)
    assert committed(own, own.loader_group) == end_offsets(own)
