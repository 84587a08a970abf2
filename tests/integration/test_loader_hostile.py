"""Generated hostile messages straight onto the topic (not through the API), mixed with valid
scans, against one loader process: it never stops, every valid scan is stored exactly once, and the
dead-letter topic holds exactly the other messages, each with its reason and origin."""

from __future__ import annotations

import datetime as dt
import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from devtools.samples import scan_payload
from quacknet import kafka as qkafka
from quacknet.scan import Scan, encode, validate_submission
from quacknet.scan.model import stored_problem
from tests.support.kafka import committed, end_offsets, read_topic
from tests.support.loader import loader_process, stored_ids
from tests.support.waiting import wait_for

NOW = dt.datetime.now(dt.UTC)
REASONS = {"undecodable", "schema_invalid", "unknown_schema_version"}
ODD = ["", " ", "\u0000", "\ud800", "T\udfff", "\ufeff", "1e999", "-0", "NaN", "262", "01", "LTE", "x" * 70,
       "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-11-26T12:00:00", "1969-12-31T23:59:59Z"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30) | st.sampled_from(ODD),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def valid_scan(rng: random.Random) -> dict:
    now = NOW - dt.timedelta(seconds=rng.randrange(3600))
    return json.loads(encode(Scan.received(validate_submission(scan_payload(f"h{rng.randrange(20)}", rng=rng, now=now), now), now)))


@st.composite
def hostile(draw) -> bytes | None:
    doc = valid_scan(random.Random(draw(st.integers(0, 2**32))))
    for name in draw(st.lists(st.sampled_from([*doc, "rsrpp", "schema_version", "received_at"]), max_size=3)):
        if draw(st.booleans()):
            doc[name] = draw(json_values)
        else:
            doc.pop(name, None)
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["json", "json", "insert", "truncate", "invalid_utf8", "bom", "nest", "shape", "none", "empty"]))
    at = draw(st.integers(0, len(raw) - 1))
    if kind == "insert":
        return raw[:at] + draw(st.binary(min_size=1, max_size=6)) + raw[at:]
    if kind == "truncate":
        return raw[:at]
    if kind == "invalid_utf8":
        return raw.replace(b'"device_id": "', b'"device_id": "\xff', 1)
    if kind == "bom":
        return b"\xef\xbb\xbf" + raw
    if kind == "nest":
        depth = draw(st.integers(1, 5000))
        return b"[" * depth + raw + b"]" * depth
    if kind == "shape":
        return json.dumps(draw(json_values)).encode("utf-8", "surrogatepass")
    if kind == "none":
        return None
    if kind == "empty":
        return b""
    return raw


def expected_valid(value: bytes | None) -> str | None:
    """The authority's verdict, independent of the loader's fast path: pydantic's Scan, then the
    store's time bounds. The scan_id if the message must be stored, else None."""
    if value is None:
        return None
    try:
        scan = Scan.model_validate_json(value)
    except (ValidationError, ValueError, RecursionError):
        return None
    return None if stored_problem(scan) else str(scan.scan_id)


def test_no_message_stops_the_loader_and_each_is_stored_or_dead_lettered(lsettings, ch):
    proc = loader_process(lsettings)
    producer = qkafka.producer(lsettings, **{"message.max.bytes": 2_000_000})
    expected_ids: set[str] = set()
    poison_origins: set[tuple[int, int]] = set()
    rng = random.Random(13)

    def produce(values: list[bytes | None]) -> None:
        placed: list[tuple[bytes | None, tuple[int, int]]] = []

        def report(err, msg, value):
            assert err is None, err
            placed.append((value, (msg.partition(), msg.offset())))

        for value in values:
            producer.produce(lsettings.scans_topic, key=b"hostile", value=value,
                             on_delivery=lambda err, msg, v=value: report(err, msg, v))
        assert producer.flush(30) == 0
        for value, origin in placed:
            scan_id = expected_valid(value)
            if scan_id is None:
                poison_origins.add(origin)
            else:
                expected_ids.add(scan_id)

    def caught_up() -> bool:
        return committed(lsettings, lsettings.loader_group) == end_offsets(lsettings)

    # the extremes, once: a message near the topic's size limit, deep nesting, a BOM, a tombstone
    big = valid_scan(rng)
    produce([json.dumps({**big, "carrier": "x" * 900_000}).encode(), b"[" * 200_000, b"\xef\xbb\xbf" + encode(Scan(**big)),
             None, b"", json.dumps(valid_scan(rng)).encode(), b'{"device_id":"a\xff"}', b'{"scan_id":"\\ud800"}'])

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(hostile(), min_size=150, max_size=150))
    def rounds(values):
        produce([*values, *(json.dumps(valid_scan(rng)).encode() for _ in range(50))])
        wait_for(caught_up, 90, "the loader to commit past every message")
        assert proc.poll() is None, "the loader stopped"

    rounds()
    assert proc.poll() is None
    proc.terminate()
    assert proc.wait(60) == 0
    assert sorted(stored_ids(ch, lsettings)) == sorted(expected_ids) and len(expected_ids) > 200
    dead = read_topic(lsettings, lsettings.dlq_topic)
    origins = [(int(dict(m.headers())["quacknet.source.partition"]), int(dict(m.headers())["quacknet.source.offset"]))
               for m in dead]
    assert sorted(origins) == sorted(poison_origins)  # exactly the others, each once
    assert {dict(m.headers())["quacknet.error.reason"].decode() for m in dead} <= REASONS
    assert all(dict(m.headers())["quacknet.error.message"] for m in dead)
