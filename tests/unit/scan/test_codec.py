"""The fast path's contract with pydantic: whatever it accepts, pydantic accepts with the same
values and the same canonical bytes; whatever it cannot vouch for, it hands back (None)."""

from __future__ import annotations

import datetime as dt
import json
import random

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

from devtools.samples import scan_payload
from quacknet.scan import MAX_AGE, MAX_SKEW, Scan, ScanFields, codec, encode, encode_received, validate_body

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def stored(**over) -> dict:
    doc = scan_payload("dev-1", now=NOW, rng=random.Random(7), **over)
    doc.setdefault("received_at", "2026-11-26T12:00:01.250Z")
    return doc


def agree_on_scan(value: bytes) -> bool:
    """The contract for one Kafka value; True when the fast path took it."""
    fast = codec.decode_scan(value)
    if fast is None:
        return False
    slow = Scan.model_validate_json(value)  # must not raise
    assert codec.encode(fast) == encode(slow)
    assert codec.row(fast, "topic", 1, 2) == codec.row(slow, "topic", 1, 2)  # what the loader stores
    return True


def test_the_derived_structs_mirror_the_models_field_for_field():
    for struct, model in ((codec.WireScan, Scan), (codec.WireSubmission, ScanFields)):
        fields = msgspec.structs.fields(struct)
        assert [f.name for f in fields] == list(Scan.model_fields)  # a submission has the server's slot
        required = [f.name for f in fields if f.required]
        assert required == [name for name, info in model.model_fields.items() if info.is_required()]


def test_a_canonical_message_takes_the_fast_path_and_round_trips_byte_for_byte():
    value = encode(Scan.model_validate(stored()))
    assert agree_on_scan(value)
    assert codec.encode(codec.decode_scan(value)) == value


@pytest.mark.parametrize("change", [
    {"lat": 54},  # an int for a float
    {"observed_at": "2026-11-26T13:00:00+01:00"},  # another offset
    {"observed_at": "2026-11-26 11:59:00.123456Z"},  # space separator
    {"lat": 54.123456789},  # many decimals in a number are not a time's
    {"observed_at": "2026-11-26t11:59:00z"},
    {"scan_id": "7A4A6BC4764341B190683E535C21051F"},  # hyphenless, upper case
    {"carrier": None, "altitude_m": 12.5},
])
def test_accepted_variants_give_pydantics_values(change):
    assert agree_on_scan(json.dumps(stored(**change)).encode())


@pytest.mark.parametrize("change", [
    {"carrier": " Telekom.de"},  # pydantic strips, so pydantic decides
    {"device_id": "dev-1\n"},  # Python's `$` matches before a final newline; Rust's does not
    {"mcc": "862"},  # patterns are checked after decoding
    {"device_id": "dev/1"},
    {"lat": "54.1"},  # a coercion only pydantic does
    {"cell_id": 7.0},
    {"schema_version": 2},
    {"technology": "LTE-A"},
    {"observed_at": "2026-11-26T11:59:00"},  # no timezone
    {"rsrp": -200.0},
    {"observed_at": "2026-11-26T11:59:00.1234567Z"},  # msgspec would round the seventh digit, pydantic truncates
    {"carrier": "T\u00e9l\u00e9com"},  # an escape could spell such a digit
    {"extra_field": 1},
])
def test_what_the_fast_path_cannot_vouch_for_goes_to_pydantic(change):
    assert codec.decode_scan(json.dumps(stored(**change)).encode()) is None


def test_a_seventh_fraction_digit_spelled_as_an_escape_is_still_pydantics():
    value = json.dumps(stored(observed_at="2026-11-26T11:59:00.1234567Z")).encode().replace(b"4567Z", b"456\\u0037Z")
    assert codec.decode_scan(value) is None
    assert Scan.model_validate_json(value).observed_at.microsecond == 123456


def test_duplicate_keys_resolve_as_pydantic_resolves_them():
    value = json.dumps(stored()).encode().replace(b'"lat": ', b'"lat": 1.5, "lat": ', 1)
    assert agree_on_scan(value)
    assert codec.decode_scan(value).lat != 1.5


def test_every_character_pydantic_strips_is_one_python_strips():
    """The padding check relies on it (pydantic trims in Rust)."""

    class Trimmed(BaseModel):
        model_config = ConfigDict(str_strip_whitespace=True)
        s: str

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    trimmed_by_rust = [c for c in chars if Trimmed(s="a" + c).s == "a"]
    assert trimmed_by_rust  # space, tab, NBSP, ...
    assert all(("a" + c).strip() == "a" for c in trimmed_by_rust)


# -- properties over generated near-valid documents ---------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=70), st.sampled_from([
        "LTE", "NR-SA", "WIFI", "GSM", "262", "01", "001", " 262", "262 ", "26", "7a4a6bc4-7643-41b1-9068-3e535c21051f",
        "2026-11-26T12:00:00Z", "2026-11-26T12:00:00.5+05:30", "2026-11-26 12:00:00Z", "2026-11-26T12:00:00",
        "2026-02-30T12:00:00Z", "2026-11-26T115900.1234567Z", "2026-11-26T11:59:00.12345678+01:00", "20261126T115900Z",
        "2026-11-26T24:00:00Z", "2026-11-26T23:59:60Z", "1764158400", "-77.5", "3", "1e3",
        "\u00a0Telekom", "Telekom\u2003", "a\u0000b", "é" * 33,
    ]),
    st.sampled_from([-90, 90, -90.0000001, 180.0, -156, -31, -30.9, 0, 1007, 1008, 2**36 - 1, 2**36, 1, 1.0, 2]),
)
FIELDS = list(Scan.model_fields)


@st.composite
def near_valid_documents(draw) -> bytes:
    doc = stored()
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        if draw(st.booleans()):
            doc[name] = draw(JSON_SCALARS)
        else:
            doc.pop(name, None)
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.text(min_size=1, max_size=8))] = draw(JSON_SCALARS)
    return json.dumps(doc).encode()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_documents())
def test_property_fast_acceptance_implies_pydantic_acceptance_with_the_same_bytes(value):
    agree_on_scan(value)


def test_the_properties_exercise_both_paths():
    """Not vacuous: a fair share of the generated documents takes each path."""
    rng, taken = random.Random(11), 0
    for _ in range(600):
        doc = stored()
        for name in rng.sample(FIELDS, rng.randint(0, 2)):
            doc[name] = rng.choice([None, 1, -1.5, "LTE", "262", "x", 10**12, "2026-11-26T12:00:00Z"])
        taken += agree_on_scan(json.dumps(doc).encode())
    assert 100 < taken < 500, taken


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(near_valid_documents(), min_size=1, max_size=4))
def test_property_submissions_agree_with_the_pydantic_body_path(values):
    body = b"[" + b",".join(v.replace(b', "received_at": "2026-11-26T12:00:01.250Z"', b"") for v in values) + b"]"
    fast = codec.decode_submissions(body)
    if fast is None:
        return
    slow = [ScanFields.model_validate(item) for item in json.loads(body)]  # must not raise
    assert encode_received(fast, NOW) == encode_received(slow, NOW) == [encode(Scan.received(s, NOW)) for s in slow]


def test_the_api_body_path_uses_the_fast_path_and_still_applies_the_rules():
    good = [dict(stored(), received_at=None) for _ in range(2)]
    good = [{k: v for k, v in doc.items() if v is not None} for doc in good]
    scans = validate_body(json.dumps(good).encode(), NOW)
    assert scans is not None and all(isinstance(s, msgspec.Struct) for s in scans)
    no_mcc = [{**good[0], "mcc": None}]  # LTE without mcc: a rule the field types cannot express
    assert validate_body(json.dumps(no_mcc).encode(), NOW) is None
    with pytest.raises(ValidationError):
        ScanFields.model_validate({**good[0], "lat": 91})


def test_values_known_to_match_a_pattern_are_remembered_boundedly_and_never_a_mismatch(monkeypatch):
    monkeypatch.setattr(codec, "_KNOWN_MAX", 3)
    (known,) = [k for name, _, k in codec._STRINGS[codec.WireScan] if name == "device_id"]
    known.clear()
    for i in range(5):
        assert agree_on_scan(json.dumps(stored(device_id=f"dev-{i}")).encode())
        assert len(known) <= 3 and f"dev-{i}" in known
    assert codec.decode_scan(json.dumps(stored(device_id="dev/1")).encode()) is None
    assert "dev/1" not in known
    assert codec.decode_scan(json.dumps(stored(device_id="dev/1")).encode()) is None  # still refused


def test_a_submission_that_sends_the_server_clock_is_pydantics_to_refuse():
    clean = {k: v for k, v in stored().items() if k != "received_at"}
    doc = dict(clean, received_at="2026-11-26T12:00:01.250Z")  # a valid time, but the server's field
    assert codec.decode_submissions(json.dumps([clean, clean]).encode()) is not None
    body = json.dumps([clean, doc]).encode()
    assert codec.decode_submissions(body) is None
    assert validate_body(body, NOW) is None
    with pytest.raises(ValidationError, match="received_at"):
        ScanFields.model_validate(doc)


@pytest.mark.parametrize("offset, ok", [
    (-MAX_AGE + dt.timedelta(seconds=1), True), (-MAX_AGE - dt.timedelta(seconds=1), False),
    (MAX_SKEW, True), (MAX_SKEW + dt.timedelta(milliseconds=1), False),
])
def test_the_clock_rule_holds_for_any_item_of_a_body(offset, ok):
    """The rule compares a body's earliest and latest times: one bad item anywhere fails the body."""
    docs = [{k: v for k, v in stored().items() if k != "received_at"} for _ in range(3)]
    docs[1]["observed_at"] = (NOW + offset).isoformat()
    padded = [dict(docs[0], carrier=" Telekom.de"), *docs[1:]]  # pydantic's to read: the whole-body path
    fast, slow = json.dumps(docs).encode(), json.dumps(padded).encode()
    assert codec.decode_submissions(fast) is not None and codec.decode_submissions(slow) is None
    for body in (fast, slow):
        assert (validate_body(body, NOW) is not None) == ok
