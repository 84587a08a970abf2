"""Copies of one scan_id inside a batch: the copy the store would keep survives, whatever order the
copies arrive in; copies with other contents are all kept for the store (and the lineage) to see."""

from __future__ import annotations

import datetime as dt
import itertools
import json

from devtools.samples import scan_payload
from quacknet.pipeline import Batch, decode_message
from quacknet.scan import ROW_COLUMNS, Scan, encode, validate_submission
from tests.support.messages import Message

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)


def copy(payload: dict, received: dt.datetime, partition: int, offset: int) -> Message:
    return Message(encode(Scan.received(validate_submission(payload, NOW), received)), partition, offset)


def stored(batch: Batch) -> list[dict]:
    return [dict(zip(ROW_COLUMNS, json.loads(line), strict=True)) for line in batch.json_rows().split(b"\n")]


def fill(messages) -> Batch:
    batch = Batch()
    for msg in messages:
        batch.add(msg, decode_message(msg))
    return batch


def test_of_copies_with_the_same_contents_the_latest_received_is_kept_in_any_order():
    scan = scan_payload("p", now=NOW)
    copies = [copy(scan, NOW, 0, 5), copy(scan, NOW + dt.timedelta(seconds=9), 0, 6), copy(scan, NOW + dt.timedelta(seconds=3), 0, 7)]
    for order in itertools.permutations(copies):  # a spool re-send of an older copy may come last
        batch = fill(order)
        [row] = stored(batch)
        assert row["kafka_offset"] == 6 and batch.duplicates == 2 and batch.differing == {}
        assert batch.messages == 3 and len(batch.scan_ids()) == 1


def test_copies_received_in_the_same_millisecond_keep_the_later_kafka_position():
    scan = scan_payload("p", now=NOW)
    for order in itertools.permutations([copy(scan, NOW, 2, 1), copy(scan, NOW, 1, 9), copy(scan, NOW, 2, 0)]):
        [row] = stored(fill(order))
        assert (row["kafka_partition"], row["kafka_offset"]) == (2, 1)  # the store's version order


def test_copies_with_other_contents_are_all_kept_for_the_store_to_choose():
    scan = scan_payload("p", now=NOW, rsrp=-100.0)
    other = {**scan, "lat": scan["lat"] + 0.5}
    third = {**scan, "device_id": "q"}
    batch = fill([copy(scan, NOW, 0, 1), copy(other, NOW + dt.timedelta(seconds=1), 0, 2),
                  copy(other, NOW + dt.timedelta(seconds=2), 0, 3), copy(third, NOW, 3, 4), copy(scan, NOW, 0, 0)])
    rows = stored(batch)
    assert sorted(r["kafka_offset"] for r in rows) == [1, 3, 4]  # one per contents: the latest of each
    assert {r["scan_id"] for r in rows} == {scan["scan_id"]} and batch.scan_ids() == [batch.scan_ids()[0]]
    assert batch.differing == {batch.scan_ids()[0]: 2} and batch.duplicates == 2
    assert len(batch.rows) + batch.duplicates + len(batch.poison) == batch.messages


def test_distinct_scans_are_all_kept_and_nothing_is_counted_as_a_copy():
    batch = fill([copy(scan_payload(f"d{i}", now=NOW), NOW, 0, i) for i in range(50)])
    assert len(batch.scan_ids()) == 50 and batch.duplicates == 0 and batch.differing == {}
    assert batch.ranges() == [("scans", 0, 0, 49)]
