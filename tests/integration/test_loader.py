"""The loader on the real broker and the real ClickHouse engine: exact counts, whatever happens."""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import subprocess
import threading
import time
import uuid

import pytest

from devtools.samples import scan_payload
from devtools.services import CLICKHOUSE
from devtools.supervisor import Supervisor, free_port
from quacknet import kafka as qkafka
from quacknet.scan import Scan, encode, validate_submission
from quacknet.warehouse import client as ch_client
from quacknet.warehouse.migrations import migrate
from tests.support.kafka import committed, end_offsets, produce, read_topic
from tests.support.loader import LoaderThread, count, loader_process, stored_ids
from tests.support.waiting import wait_for


def test_a_normal_run_stores_every_scan_once_and_commits_behind_it(lsettings, ch):
    ids = produce(lsettings, 6000)
    loader = LoaderThread(lsettings)
    try:
        wait_for(lambda: count(ch, lsettings) == 6000, 60, "6000 rows")
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
    bad_scan = json.loads(encode(Scan.received(validate_submission(scan_payload(), dt.datetime.now(dt.UTC)),
                                               dt.datetime.now(dt.UTC))))
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
        wait_for(lambda: count(ch, lsettings) == 200, 60, "the good rows")
        wait_for(lambda: committed(lsettings, lsettings.loader_group) == end_offsets(lsettings), 30, "commit past the poison")
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


def test_messages_only_pydantic_accepts_are_stored_with_pydantics_values(lsettings, ch):
    """The fast path (quacknet.scan.codec) hands these to pydantic; the stored row must be what pydantic
    read, not the message's own spelling."""
    now = dt.datetime.now(dt.UTC)
    base = json.loads(encode(Scan.received(validate_submission(scan_payload("lax"), now), now)))
    variants = {
        "padded": {"carrier": "  Telekom.de  ", "device_id": " lax "},
        "lax_number": {"lat": "52.5", "cell_id": 7.0},
        "seventh_digit": {"observed_at": (now - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.1234569Z")},
        "escaped": {"carrier": "T\u00e9l\u00e9com"},
    }
    producer = qkafka.producer(lsettings)
    expected, names = {}, {}
    for name, change in variants.items():
        doc = {**base, "scan_id": str(uuid.uuid4()), **change}
        value = json.dumps(doc, ensure_ascii=True).encode()
        expected[doc["scan_id"]], names[name] = Scan.model_validate_json(value), doc["scan_id"]
        producer.produce(lsettings.scans_topic, key=name.encode(), value=value)
    producer.produce(lsettings.scans_topic, key=b"canonical", value=encode(Scan.model_validate(base)))
    expected[base["scan_id"]] = Scan.model_validate(base)
    assert producer.flush(10) == 0
    loader = LoaderThread(lsettings)
    try:
        wait_for(lambda: count(ch, lsettings) == len(expected), 60, "every variant")
    finally:
        loader.stop()
    rows = ch.query(f"SELECT toString(scan_id), device_id, carrier, lat, cell_id, observed_at "
                    f"FROM {lsettings.clickhouse_database}.scans").result_rows
    for scan_id, device_id, carrier, lat, cell_id, observed_at in rows:
        want = expected[scan_id]
        assert (device_id, carrier, lat, cell_id) == (want.device_id, want.carrier, want.lat, want.cell_id)
        assert observed_at.replace(tzinfo=dt.UTC) == want.observed_at.replace(  # DateTime64(3)
            microsecond=want.observed_at.microsecond // 1000 * 1000)
    assert {r[0] for r in rows} == set(expected)
    by_id = {r[0]: r for r in rows}
    assert by_id[names["padded"]][1:3] == ("lax", "Telekom.de")
    assert by_id[names["lax_number"]][3:5] == (52.5, 7)
    assert by_id[names["escaped"]][2] == "Télécom"


def test_the_same_scan_twice_is_counted_once(lsettings, ch):
    now = dt.datetime.now(dt.UTC)
    scan_in = validate_submission(scan_payload("twice"), now)
    first = Scan.received(scan_in, now)
    retry = Scan.received(scan_in, now + dt.timedelta(seconds=5))  # the phone retried: new receive time
    producer = qkafka.producer(lsettings)
    for scan in (first, first, retry):  # plus a spool re-send of the first
        producer.produce(lsettings.scans_topic, key=b"twice", value=encode(scan))
    producer.flush(10)
    loader = LoaderThread(lsettings)
    try:
        wait_for(lambda: committed(lsettings, lsettings.loader_group) == end_offsets(lsettings), 30, "commit")
    finally:
        loader.stop()
    rows = ch.query(f"SELECT scan_id, received_at FROM {lsettings.clickhouse_database}.scans").result_rows
    assert len(rows) == 1 and str(rows[0][0]) == str(scan_in.scan_id)
    assert rows[0][1].replace(tzinfo=dt.UTC) == retry.received_at  # the latest copy wins


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
        wait_for(lambda: count(ch, lsettings) == len(ids), 120, f"{len(ids)} rows after {kills} kills")
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
        wait_for(lambda: count(ch, lsettings) > 0, 60, "the first loader to store something")
        second = LoaderThread(lsettings)
        ids += produce(lsettings, 10_000)
        wait_for(lambda: count(ch, lsettings) == 20_000, 120, "20000 rows with two loaders")
    finally:
        if second:
            second.stop()
        first.stop()
    assert sorted(stored_ids(ch, lsettings)) == sorted(ids)
    assert committed(lsettings, lsettings.loader_group) == end_offsets(lsettings)


def test_sigterm_stores_and_commits_what_was_consumed(lsettings, ch):
    produce(lsettings, 8000)
    proc = loader_process(lsettings)
    wait_for(lambda: count(ch, lsettings) > 0, 60, "the loader to start storing")
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
        wait_for(lambda: count(ch, lsettings) == 3000, 60, "the loader")
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
        wait_for(lambda: count(client, own) == 3000, 60, "the first rows")
        sup.stop(CLICKHOUSE)  # ClickHouse goes away while scans keep coming
        ids += produce(own, 3000)
        time.sleep(3)
        assert loader.loader.metrics.insert_failures._value.get() > 0
        sup.start(CLICKHOUSE)
        client = ch_client(own)
        wait_for(lambda: count(client, own) == 6000, 90, "the loader to recover by itself")
    finally:
        loader.stop()
        sup.stop(CLICKHOUSE)
    assert committed(own, own.loader_group) == end_offsets(own)


@pytest.mark.parametrize("table,column", [("scans_store", "rsrq"), ("load_ledger", "source")])
def test_a_store_that_refuses_the_rows_stops_the_loader_with_clickhouses_reason(lsettings, ch, table, column):
    """A schema error is not an outage: no endless backoff, no commit, a message naming table and column."""
    if table == "scans_store":  # the copies' lineage hashes every column: ClickHouse refuses to drop one under it
        ch.command(f"DROP VIEW {lsettings.clickhouse_database}.scan_copies_mv")
    ch.command(f"ALTER TABLE {lsettings.clickhouse_database}.{table} DROP COLUMN {column}")
    produce(lsettings, 500)
    proc = loader_process(lsettings, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 1, err[-2000:]
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    [failed] = [e for e in events if e["event"] == "loader.failed"]
    assert failed["kind"] == "Refused"
    assert column in failed["error"] and f"{lsettings.clickhouse_database}.{table}" in failed["error"]
    assert not [e for e in events if e["event"] == "loader.insert_failed"]  # refused once, never retried
    assert committed(lsettings, lsettings.loader_group) == dict.fromkeys(range(lsettings.scans_partitions), 0)


def test_a_loader_refuses_to_start_on_a_schema_that_is_behind(lsettings, ch):
    ch.command(f"ALTER TABLE {lsettings.clickhouse_database}.schema_migrations DELETE WHERE version = 3 "
               "SETTINGS mutations_sync = 1")
    proc = loader_process(lsettings, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1
    [failed] = [json.loads(line) for line in err.splitlines() if '"loader.failed"' in line]
    assert failed["kind"] == "SchemaBehind" and "python -m quacknet migrate" in failed["error"]
