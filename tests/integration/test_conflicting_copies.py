"""Issue 14 on the real stack: a phone posts a scan twice through the API (``?wait=true``, the API
under gunicorn), the second copy differing in one field (each case of the issue's table). Whether
the copies reach ClickHouse in separate loader batches, in one batch, or through a replay of their
range, ``quacknet.scans`` holds exactly one row per scan_id: the later copy's. Superseded copies
whose contents differed are counted by the loader and visible in the scan's lineage."""

from __future__ import annotations

import datetime as dt
import json
import random
import urllib.request

from confluent_kafka import TopicPartition

from devtools.samples import scan_payload
from quacknet import kafka as qkafka
from quacknet import replay
from quacknet.scan import MAX_AGE, Scan, encode, to_millis, validate_submission
from quacknet.warehouse import queries
from quacknet.warehouse.migrations import migrate
from tests.support.kafka import committed, end_offsets
from tests.support.loader import LoaderThread
from tests.support.waiting import wait_for

FIELDS = ("device_id", "lat", "lon", "technology", "observed_at", "rsrp")
OTHER_MONTH = "observed_at, in another month"


def previous_month(now: dt.datetime) -> dt.datetime | None:
    """A time in the month before ``now`` that the API's clock rule still accepts (none on a 31st)."""
    candidate = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    return candidate if now - candidate < MAX_AGE - dt.timedelta(hours=1) else None


class Phone:
    """A phone with a buggy retry: per case of the issue's table, a scan and a second copy of it that
    differs in one field. ``send(0)`` posts every first copy in one request, ``send(1)`` every second
    copy in a later one (so received later)."""

    def __init__(self, served, seed: int):
        self.api, keys, _ = served
        self.key, self.device = keys["writer"], f"phone-{seed}"
        rng, now = random.Random(seed), dt.datetime.now(dt.UTC)
        other_month = previous_month(now)
        # On a 31st no earlier month passes the API's clock rule: that case's copies then go straight
        # onto the topic, as the API would have written them (observed in the previous month).
        self.direct = set() if other_month else {OTHER_MONTH}
        other_month = other_month or (now.replace(day=1) - dt.timedelta(days=2))
        changes = {
            "lat/lon": {"lat": 50.11, "lon": 8.68},
            "technology": {"technology": "NR-SA"},
            "observed_at": {"observed_at": (now - dt.timedelta(minutes=3)).isoformat()},
            OTHER_MONTH: {"observed_at": other_month.isoformat()},
            "rsrp": {"rsrp": -77.0},
            "device_id": {"device_id": f"phone-{seed}-b"},
            "nothing": {},
        }
        self.copies = {}
        for name, change in changes.items():
            first = scan_payload(f"phone-{seed}", rng=rng, now=now, rsrp=-101.0,
                                 observed_at=(now - dt.timedelta(minutes=10)).isoformat())
            self.copies[name] = (first, {**first, **change})
        self.positions: list[dict[str, tuple[int, int]]] = []

    def send(self, which: int) -> dict[str, tuple[int, int]]:
        """Kafka position per scan_id of the copies sent."""
        body = [c[which] for name, c in self.copies.items() if name not in self.direct]
        req = urllib.request.Request(f"http://127.0.0.1:{self.api.api_port}/v1/scans?wait=true", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"X-API-Key": self.key, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 202
            answer = json.loads(resp.read())
        got = {d["scan_id"]: (d["partition"], d["offset"]) for d in answer["delivered"]}
        assert len(got) == len(body)
        for name in self.direct:
            got |= self.produce(self.copies[name][which], dt.datetime.now(dt.UTC))
        self.positions.append(got)
        return got

    def produce(self, payload: dict, received: dt.datetime) -> dict[str, tuple[int, int]]:
        observed = dt.datetime.fromisoformat(payload["observed_at"])
        scan = Scan.received(validate_submission(payload, observed), received)
        return self.produce_raw(payload["scan_id"], payload["device_id"], encode(scan))

    def produce_raw(self, scan_id: str, device: str, value: bytes) -> dict[str, tuple[int, int]]:
        producer, got = qkafka.producer(self.api), {}
        producer.produce(self.api.scans_topic, key=device.encode(), value=value,
                         on_delivery=lambda err, msg: got.update({scan_id: (msg.partition(), msg.offset())}))
        assert producer.flush(10) == 0 and got
        return got

    def ranges(self, *which: int) -> dict[int, tuple[int, int]]:
        """Per partition, the offsets from the first copy sent to the last (of the sends ``which``; all by default)."""
        spans: dict[int, tuple[int, int]] = {}
        sends = [self.positions[i] for i in which] if which else self.positions
        for partition, offset in (p for sent in sends for p in sent.values()):
            low, high = spans.get(partition, (offset, offset + 1))
            spans[partition] = (min(low, offset), max(high, offset + 1))
        return spans


def pipeline(served, lsettings, **over):
    """The test's loader settings on the API's topic, its group starting at the topic's end (the
    topic is the module's: earlier tests' scans are not this test's)."""
    settings = lsettings.model_copy(update={"scans_topic": served[0].scans_topic, **over})
    consumer = qkafka.consumer(settings, settings.loader_group)
    try:
        consumer.commit(offsets=[TopicPartition(settings.scans_topic, p, o) for p, o in end_offsets(settings).items()],
                        asynchronous=False)
    finally:
        consumer.close()
    return settings


def wait_committed(settings, *sent: dict[str, tuple[int, int]]) -> None:
    want: dict[int, int] = {}
    for partition, offset in (p for positions in sent for p in positions.values()):
        want[partition] = max(want.get(partition, 0), offset + 1)
    wait_for(lambda: all(committed(settings, settings.loader_group).get(p, 0) >= o for p, o in want.items()),
             60, "the loader to commit past the copies")


def assert_one_row_per_scan_holding_the_later_copy(ch, database: str, phone: Phone) -> None:
    later = phone.positions[1]
    ids = [b["scan_id"] for _, b in phone.copies.values()]
    rows = ch.query(f"SELECT toString(scan_id), {', '.join(FIELDS)}, kafka_partition, kafka_offset FROM {database}.scans "
                    "WHERE scan_id IN {ids:Array(UUID)}", parameters={"ids": ids}).result_rows
    assert sorted(r[0] for r in rows) == sorted(ids)  # exactly one row per scan_id
    by_id = {r[0]: r for r in rows}
    for name, (_, b) in phone.copies.items():
        row = by_id[b["scan_id"]]
        got = dict(zip(FIELDS, row[1:-2], strict=True))
        got["observed_at"] = got["observed_at"].replace(tzinfo=None)
        observed = to_millis(dt.datetime.fromisoformat(b["observed_at"])).replace(tzinfo=None)  # DateTime64(3)
        want = {k: b[k] for k in FIELDS} | {"observed_at": observed}
        assert got == want, name
        assert tuple(row[-2:]) == later[b["scan_id"]], name  # the later copy's own row
    assert ch.command(f"SELECT count() FROM {database}.scans") == ch.command(f"SELECT uniqExact(scan_id) FROM {database}.scans")


def assert_lineage_shows_the_conflicts(ch, database: str, phone: Phone, one_batch: bool = False) -> None:
    """Both copies are in the lineage, the later one kept; in one batch, of identical copies only
    the later is stored (the earlier is counted as a duplicate)."""
    for name, (a, _) in phone.copies.items():
        lineage = queries.lineage(ch, database, a["scan_id"])
        kept = [True] if one_batch and name == "nothing" else [False, True]
        assert [c.kept for c in lineage.copies] == kept, name
        assert lineage.superseded_differing == (0 if name == "nothing" else 1), name
    devices = [d for d in queries.conflicting_devices(ch, database) if d.device_id.startswith(phone.device)]
    assert sum(d.superseded_differing for d in devices) == len(phone.copies) - 1


def sample(metric, suffix: str = "") -> float:
    return next(s.value for m in metric.collect() for s in m.samples if s.name.endswith(suffix or "_total"))


def test_copies_in_separate_batches_leave_one_row_per_scan_holding_the_later_copy(served, lsettings, ch):
    settings = pipeline(served, lsettings)
    phone = Phone(served, seed=1)
    loader = LoaderThread(settings)
    try:
        wait_committed(settings, phone.send(0))  # stored and committed: the second copies come later
        wait_committed(settings, phone.send(1))
    finally:
        loader.stop()
    assert_one_row_per_scan_holding_the_later_copy(ch, settings.clickhouse_database, phone)
    assert_lineage_shows_the_conflicts(ch, settings.clickhouse_database, phone)
    metrics = loader.loader.metrics
    assert sample(metrics.conflicting) == len(phone.copies) - 1  # every case but the identical copy
    assert sample(metrics.duplicates) == 0 and sample(metrics.batch_rows, "_count") >= 2


def test_copies_in_one_batch_leave_one_row_per_scan_holding_the_later_copy(served, lsettings, ch):
    settings = pipeline(served, lsettings, loader_batch_seconds=8.0, loader_batch_rows=10_000)
    phone = Phone(served, seed=2)
    sent = phone.send(0), phone.send(1)
    # a new group reads the topic from its start; the batch closes after 8 s, with everything in it
    loader = LoaderThread(settings)
    try:
        wait_committed(settings, *sent)
    finally:
        loader.stop()
    metrics = loader.loader.metrics
    assert sample(metrics.batch_rows, "_count") == 1  # the copies did meet in one batch
    assert_one_row_per_scan_holding_the_later_copy(ch, settings.clickhouse_database, phone)
    assert_lineage_shows_the_conflicts(ch, settings.clickhouse_database, phone, one_batch=True)
    assert sample(metrics.conflicting) == len(phone.copies) - 1 and sample(metrics.duplicates) == 1


def test_a_replay_of_the_range_leaves_one_row_per_scan_holding_the_later_copy(served, lsettings, ch):
    settings = pipeline(served, lsettings)
    phone = Phone(served, seed=3)
    phone.send(0), phone.send(1)
    topic, db = settings.scans_topic, settings.clickhouse_database
    ranges = replay.plan(settings, topic, offsets=phone.ranges())

    for which in (0, 1):  # the first copies' range, then the second copies': in separate batches
        result = replay.copy(settings, topic, replay.plan(settings, topic, offsets=phone.ranges(which)))
        assert result.inserted == len(phone.copies) * (1 - which) and result.duplicates_in_batch == 0
    assert_one_row_per_scan_holding_the_later_copy(ch, db, phone)
    assert_lineage_shows_the_conflicts(ch, db, phone)

    again = replay.copy(settings, topic, ranges)  # the whole range in one batch, over what is stored
    assert again.inserted == 0 and again.duplicates_in_batch == 1
    assert_one_row_per_scan_holding_the_later_copy(ch, db, phone)
    assert_lineage_shows_the_conflicts(ch, db, phone)

    fresh = f"{db}_fresh"
    ch.command(f"CREATE DATABASE {fresh}")
    try:
        migrate(ch, fresh)
        result = replay.copy(settings, topic, ranges, database=fresh)  # both copies of each scan in one batch
        assert result.duplicates_in_batch == 1  # the identical copy
        assert_one_row_per_scan_holding_the_later_copy(ch, fresh, phone)
        assert_lineage_shows_the_conflicts(ch, fresh, phone, one_batch=True)
    finally:
        ch.command(f"DROP DATABASE IF EXISTS {fresh} SYNC")


def test_an_older_copy_resent_after_the_newer_one_changes_nothing(served, lsettings, ch):
    """The spool re-sends the bytes it kept: an older copy can reach Kafka after a newer one."""
    settings = pipeline(served, lsettings)
    phone = Phone(served, seed=4)
    loader = LoaderThread(settings)
    try:
        first = phone.send(0)
        wait_committed(settings, first)
        wait_committed(settings, phone.send(1))
        resent = {}
        consumer = qkafka.consumer(settings, "test-resend")
        try:
            for scan_id, (partition, offset) in first.items():
                consumer.assign([TopicPartition(settings.scans_topic, partition, offset)])
                [msg] = consumer.consume(1, timeout=10)
                resent |= phone.produce_raw(scan_id, json.loads(msg.value())["device_id"], msg.value())
        finally:
            consumer.close()
        wait_committed(settings, resent)
    finally:
        loader.stop()
    assert_one_row_per_scan_holding_the_later_copy(ch, settings.clickhouse_database, phone)
