"""decode_message is total: whatever a message holds, a scan or Poison, never an exception."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.samples import scan_payload
from quacknet.pipeline import Poison, decode_message
from quacknet.scan import Scan, encode, validate_submission
from tests.support.messages import Message

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
VALID = encode(Scan.received(validate_submission(scan_payload(now=NOW), NOW), NOW))


def _json_values():
    return st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                        max_leaves=12)


REASONS = {"undecodable", "schema_invalid", "unknown_schema_version"}


def _judged(result) -> str:
    """'scan' for a scan that round-trips to the same canonical message, else the poison's reason."""
    if isinstance(result, Poison):
        assert result.reason in REASONS and result.error and result.message is not None
        return result.reason
    assert Scan.model_validate_json(encode(Scan.model_validate(result, from_attributes=True))).scan_id == result.scan_id
    return "scan"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_any_bytes_are_a_scan_or_poison_with_a_known_reason(value):
    assert _judged(decode_message(Message(value))) in REASONS | {"scan"}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(json.loads(VALID))), _json_values(), max_size=6), st.binary(max_size=4))
def test_a_valid_scan_with_fields_replaced_or_corrupted_is_a_scan_or_poison(changes, garbage):
    doc = {**json.loads(VALID), **changes}
    whole, truncated = json.dumps(doc).encode(), json.dumps(doc).encode()[:-1] + garbage
    assert _judged(decode_message(Message(whole))) in REASONS | {"scan"}
    assert _judged(decode_message(Message(truncated))) in REASONS | ({"scan"} if garbage == b"}" else set())
    corrupted = json.dumps(doc, ensure_ascii=False).encode().replace(b'"', b'"\xff', 1)
    assert _judged(decode_message(Message(corrupted))) == "undecodable"


def test_the_bytes_that_stopped_the_loader_are_poison():
    for value in (b'{"device_id":"a\xff"}', b'{"scan_id":"\\ud800"}', b"\xef\xbb\xbf" + VALID, b"", b"null", b"[]"):
        result = decode_message(Message(value))
        assert isinstance(result, Poison) and result.reason in ("undecodable", "schema_invalid"), value
    assert decode_message(Message(None)).reason == "undecodable"
    invalid_utf8 = VALID.replace(b'"device_id":"', b'"device_id":"\xff', 1)
    assert decode_message(Message(invalid_utf8)).reason == "undecodable"
