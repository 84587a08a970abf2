"""The scan schema: what is accepted, what is refused, and the Kafka encoding."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from devtools.samples import scan_payload
from quacknet.scan import Scan, decode, encode, encode_received, kafka_key, validate_body, validate_submission

NOW = dt.datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=dt.UTC)


def payload(**over) -> dict:
    return scan_payload(now=NOW, **over)


def _errors(body) -> dict[tuple, str]:
    with pytest.raises(ValidationError) as err:
        validate_submission(body, NOW)
    return {e["loc"]: e["type"] for e in err.value.errors()}


def test_a_full_scan_round_trips_through_the_kafka_encoding():
    scan = validate_submission(payload(), NOW)
    message = Scan.received(scan, NOW)
    value = encode(message)
    doc = json.loads(value)
    assert doc["received_at"] == "2026-11-26T12:00:00.123000Z"  # server clock, ms precision, UTC
    assert doc["schema_version"] == 1 and doc["technology"] == "LTE" and doc["mnc"] == "01"
    assert "altitude_m" not in doc  # absent stays absent
    assert decode(value) == message
    assert kafka_key(scan) == b"device-1"
    assert encode_received([scan], NOW) == [value]  # the API's hot path writes the same bytes


def test_wifi_needs_no_cellular_identity():
    scan = validate_submission(payload(technology="WIFI", mcc=None, mnc=None, rsrp=None, rsrq=None, sinr=None, rssi=-61.0), NOW)
    assert scan.mcc is None and scan.rssi == -61.0


@pytest.mark.parametrize("field,value", [
    ("lat", 90.0001), ("lat", -91), ("lon", 180.5), ("lon", -181), ("rsrp", -157), ("rsrp", -30),
    ("accuracy_m", -1), ("pci", 1008), ("mcc", "999"), ("mnc", "1"), ("download_kbps", -5), ("device_id", ""),
    ("device_id", "has space"), ("band", 0),
])
def test_out_of_range_values_are_refused(field, value):
    assert (field,) in _errors(payload(**{field: value}))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused(value):
    assert _errors(payload(lat=value))[("lat",)] == "finite_number"


def test_unknown_fields_and_server_fields_are_refused():
    errors = _errors(payload(rsrpp=-90, received_at=NOW.isoformat()))
    assert errors[("rsrpp",)] == "extra_forbidden" and errors[("received_at",)] == "extra_forbidden"


def test_missing_fields_and_wrong_types_are_named():
    body = payload()
    del body["scan_id"], body["lon"]
    body["lat"] = "north"
    errors = _errors(body)
    assert errors[("scan_id",)] == "missing" and errors[("lon",)] == "missing" and errors[("lat",)] == "float_parsing"


@pytest.mark.parametrize("observed_at,ok", [
    (NOW + dt.timedelta(minutes=9), True), (NOW + dt.timedelta(minutes=11), False),
    (NOW - dt.timedelta(days=29), True), (NOW - dt.timedelta(days=31), False),
])
def test_timestamps_must_be_plausible(observed_at, ok):
    body = payload(observed_at=observed_at.isoformat())
    if ok:
        assert validate_submission(body, NOW).observed_at.tzinfo == dt.UTC
    else:
        assert ("observed_at",) in _errors(body)


def test_naive_timestamps_are_refused():
    assert ("observed_at",) in _errors(payload(observed_at="2026-11-26T11:00:00"))


def test_network_fields_must_fit_the_technology():
    assert () in _errors(payload(mcc=None))  # cellular without mcc
    assert () in _errors(payload(technology="GSM", rssi=-80.0))  # rsrp/rsrq/sinr on GSM
    assert () not in _errors(payload(technology="GSM", rsrp=None, rsrq=None, sinr=None, lat=99))


def test_unknown_schema_version_is_refused():
    assert ("schema_version",) in _errors(payload(schema_version=2))


def test_stored_messages_are_not_rejudged_by_todays_clock():
    old = Scan.received(validate_submission(payload(), NOW), NOW)
    assert decode(encode(old)) == old  # decoding a year later must not fail on the age check


@pytest.mark.parametrize("bad", [
    {"lat": 91}, {"observed_at": (NOW + dt.timedelta(hours=1)).isoformat()}, {"mcc": None}, {"technology": "UMTS"},
    {"unknown": 1}, {"lat": float("nan")},
])
def test_the_fast_batch_path_agrees_with_item_by_item_validation(bad):
    good = [payload(device_id=f"d{i}") for i in range(3)]
    assert [s.scan_id for s in validate_body(json.dumps(good).encode(), NOW)] == \
           [validate_submission(g, NOW).scan_id for g in good]
    assert len(validate_body(json.dumps(good[0]).encode(), NOW)) == 1  # a single object
    body = json.dumps([*good, payload(**bad)], allow_nan=True).encode()
    assert validate_body(body, NOW) is None  # any failure: the caller validates item by item
    with pytest.raises(ValidationError):
        validate_submission(json.loads(body)[-1], NOW)
