"""Replays and offset resets on the real broker and engine; offset resets judged by Kafka's own tool."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest
from confluent_kafka import TopicPartition

from devtools import kafka as devkafka
from devtools.samples import scan_payload
from quacknet import kafka as qkafka
from quacknet import replay
from quacknet.errors import Conflict, InvalidInput
from quacknet.ops import offsets
from quacknet.scan import Scan, encode, validate_submission
from tests.support.kafka import committed, end_offsets, produce
from tests.support.loader import LoaderThread, count, stored_ids
from tests.support.waiting import wait_for


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_a_deleted_time_range_is_restored_exactly_and_replaying_twice_changes_nothing(lsettings, ch):
    a = produce(lsettings, 1500)
    time.sleep(1.2)
    t_b = _now()
    b = produce(lsettings, 1500)
    time.sleep(1.2)
    t_c = _now()
    c = produce(lsettings, 1500)
    loader = LoaderThread(lsettings)
    try:
        wait_for(lambda: count(ch, lsettings) == 4500, 60, "the load")
        db = lsettings.clickhouse_database
        ch.command(f"DELETE FROM {db}.scans_store WHERE scan_id IN {{ids:Array(UUID)}}", parameters={"ids": b})
        assert count(ch, lsettings) == 3000

        ranges = replay.plan(lsettings, lsettings.scans_topic, start_time=t_b, end_time=t_c)
        assert sum(r.messages for r in ranges) == 1500  # the plan: exactly range B, per partition
        first = replay.copy(lsettings, lsettings.scans_topic, ranges)  # while the live loader runs
        assert (first.read, first.inserted, first.already_present, first.dead_lettered) == (1500, 1500, 0, 0)
        assert sorted(stored_ids(ch, lsettings)) == sorted(a + b + c)

        again = replay.copy(lsettings, lsettings.scans_topic, ranges)
        assert (again.read, again.inserted, again.already_present) == (1500, 0, 1500)
        assert count(ch, lsettings) == 4500
    finally:
        loader.stop()


def test_a_replays_counts_add_up_with_copies_and_poison_in_its_range(lsettings, ch):
    """read = inserted + already present + duplicates within batches + dead-lettered, each as it is."""
    stored = produce(lsettings, 200)
    loader = LoaderThread(lsettings)
    try:
        wait_for(lambda: count(ch, lsettings) == 200, 60, "the first load")
    finally:
        loader.stop()
    new = [scan_payload(f"n{i}", now=_now()) for i in range(100)]
    producer = qkafka.producer(lsettings)
    for payload in [*new, *new[:50]]:  # 50 of them twice, as a phone retry
        scan = Scan.received(validate_submission(payload, _now()), _now())
        producer.produce(lsettings.scans_topic, key=scan.device_id.encode(), value=encode(scan))
    for i in range(7):
        producer.produce(lsettings.scans_topic, key=b"poison", value=b"not a scan %d" % i)
    assert producer.flush(10) == 0
    ends = end_offsets(lsettings)
    ranges = replay.plan(lsettings, lsettings.scans_topic, offsets={p: (0, ends[p]) for p in ends})
    result = replay.copy(lsettings, lsettings.scans_topic, ranges)
    assert (result.read, result.inserted, result.already_present, result.duplicates_in_batch, result.dead_lettered) == (
        357, 100, 200, 50, 7)
    assert result.summary() == ("read 357 = inserted 100 + already present 200 + duplicates within batches 50 "
                                "+ dead-lettered 7")
    assert sorted(stored_ids(ch, lsettings)) == sorted(stored + [p["scan_id"] for p in new])


def test_explicit_offsets_and_the_retention_horizon(lsettings, admin, ch):
    produce(lsettings, 600)
    ends = end_offsets(lsettings)
    ranges = replay.plan(lsettings, lsettings.scans_topic, offsets={p: (0, ends[p]) for p in range(6)})
    assert sum(r.messages for r in ranges) == 600
    result = replay.copy(lsettings, lsettings.scans_topic, ranges)
    assert (result.read, result.inserted) == (600, 600) and count(ch, lsettings) == 600

    # retention deletes the head of partition 0: a replay from before it must fail, not shift
    deleted = ends[0] // 2
    futures = admin.delete_records([TopicPartition(lsettings.scans_topic, 0, deleted)])
    for future in futures.values():
        future.result(timeout=30)
    with pytest.raises(InvalidInput, match="partition 0: offset 0 was deleted by retention"):
        replay.plan(lsettings, lsettings.scans_topic, offsets={0: (0, ends[0])})
    with pytest.raises(InvalidInput, match="partition 0: .*already deleted by retention"):
        replay.plan(lsettings, lsettings.scans_topic, start_time=_now() - dt.timedelta(hours=1), partitions=[0])
    with pytest.raises(InvalidInput, match="either a time range"):
        replay.plan(lsettings, lsettings.scans_topic)


def _tool_dry_run(settings, group: str, topic: str, *how: str) -> dict[int, int]:
    done = devkafka.run_tool(settings, "kafka-consumer-groups", [
        "--bootstrap-server", settings.kafka_bootstrap_servers, "--group", group, "--topic", topic,
        "--reset-offsets", *how, "--dry-run"])
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(topic) or line.split()[:1] == [group]]
    parsed = {}
    for row in rows:
        numbers = [x for x in row if re.fullmatch(r"-?\d+", x)]
        parsed[int(numbers[0])] = int(numbers[-1])  # PARTITION ... NEW-OFFSET
    return parsed


@pytest.mark.parametrize("spec,tool_args", [
    (offsets.ResetSpec("earliest"), ["--to-earliest"]),
    (offsets.ResetSpec("latest"), ["--to-latest"]),
    (offsets.ResetSpec("shift", shift=-40), ["--shift-by", "-40"]),
    (offsets.ResetSpec("shift", shift=10_000), ["--shift-by", "10000"]),
    (offsets.ResetSpec("offsets", offsets=dict.fromkeys(range(6), 25)), ["--to-offset", "25"]),
])
def test_the_reset_plan_agrees_with_kafka_consumer_groups(lsettings, spec, tool_args):
    produce(lsettings, 1200)
    group = lsettings.loader_group
    consumer = qkafka.consumer(lsettings, group)
    consumer.commit(offsets=[TopicPartition(lsettings.scans_topic, p, 60) for p in range(6)], asynchronous=False)
    consumer.close()
    ours = {r.partition: r.new for r in offsets.plan(lsettings, group, lsettings.scans_topic, spec)}
    assert ours == _tool_dry_run(lsettings, group, lsettings.scans_topic, *tool_args)


def test_to_datetime_agrees_with_the_tool_and_the_reset_is_refused_while_members_are_active(lsettings, ch):
    produce(lsettings, 600)
    time.sleep(1.2)
    when = _now()
    produce(lsettings, 600)
    group = lsettings.loader_group
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"
    spec = offsets.ResetSpec("datetime", when=when)
    plan = offsets.plan(lsettings, group, lsettings.scans_topic, spec)
    assert {r.partition: r.new for r in plan} == _tool_dry_run(lsettings, group, lsettings.scans_topic, "--to-datetime", stamp)
    assert sum(r.latest - r.new for r in plan) == 600

    loader = LoaderThread(lsettings)
    try:
        wait_for(lambda: count(ch, lsettings) == 1200, 60, "the load")
        with pytest.raises(Conflict, match="active member"):
            offsets.execute(lsettings, group, lsettings.scans_topic, plan)
    finally:
        loader.stop()
    offsets.execute(lsettings, group, lsettings.scans_topic, plan)
    assert committed(lsettings, group) == {r.partition: r.new for r in plan}

    # the live loader re-consumes from there without duplicating a row
    loader = LoaderThread(lsettings)
    try:
        wait_for(lambda: committed(lsettings, group) == end_offsets(lsettings), 60, "the re-consumption")
    finally:
        loader.stop()
    assert count(ch, lsettings) == 1200
    assert ch.command(f"SELECT count() FROM {lsettings.clickhouse_database}.scans_store") >= 1800  # re-inserted copies


def test_the_waiting_reset_proceeds_once_the_group_is_empty(lsettings):
    produce(lsettings, 100)
    group = lsettings.loader_group
    plan = offsets.plan(lsettings, group, lsettings.scans_topic, offsets.ResetSpec("latest"))
    member = qkafka.consumer(lsettings, group)
    member.subscribe([lsettings.scans_topic])
    member.poll(5)
    closer = threading.Timer(3, member.close)
    closer.start()
    offsets.execute(lsettings, group, lsettings.scans_topic, plan, wait_s=60)
    closer.join()
    assert committed(lsettings, group) == end_offsets(lsettings)
