"""The scan's fast JSON path: a msgspec codec derived from the pydantic models in ``quacknet.scan.model``.

pydantic stays the authority on what a scan is. The fast path only ever says "yes, and here
are the values" or "ask pydantic": it accepts a subset of what pydantic accepts, and for that
subset yields the same values and writes the same canonical bytes (``encode``). Whatever it
refuses (a string pydantic would coerce to a number, whitespace pydantic would strip, an error
of any kind) goes to pydantic, which decides and names every failing field. Property tests
hold the two to that contract (tests/unit/scan/test_codec.py).

Why a second codec at all: validating and re-encoding is where both the API and the loader
spend most of their CPU, and msgspec does it in about half of pydantic's time (bench/README.md).
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from operator import attrgetter
from typing import Annotated, Any, Literal, Union

import msgspec
from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import AwareDatetime, BaseModel

from quacknet.scan.model import Scan, ScanFields, follow_the_rules, received_stamp, to_millis, validate_whole_body


def _meta(metadata: list) -> tuple[msgspec.Meta | None, str | None]:
    """pydantic's constraint objects as one msgspec Meta, and the pattern apart (see ``_STRINGS``)."""
    kw: dict[str, Any] = {}
    pattern = None
    for item in metadata:
        if isinstance(item, Ge):
            kw["ge"] = item.ge
        elif isinstance(item, Le):
            kw["le"] = item.le
        elif isinstance(item, MinLen):
            kw["min_length"] = item.min_length
        elif isinstance(item, MaxLen):
            kw["max_length"] = item.max_length
        elif getattr(item, "pattern", None):
            pattern = item.pattern
        else:
            raise TypeError(f"no msgspec equivalent for the constraint {item!r}: teach quacknet.scan.codec about it")
    return (msgspec.Meta(**kw) if kw else None), pattern


def _msgspec_type(annotation: Any, metadata: list) -> tuple[Any, str | None]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        kind, pattern = _msgspec_type(inner, metadata)
        return kind | None, pattern
    if annotation is AwareDatetime and not metadata:
        return Annotated[dt.datetime, msgspec.Meta(tz=True)], None
    if typing.get_origin(annotation) is Literal or annotation in (str, int, float, bool) or isinstance(annotation, type):
        meta, pattern = _meta(metadata)
        if pattern is not None and annotation is not str:
            raise TypeError(f"a pattern on {annotation!r}: teach quacknet.scan.codec about it")
        return (Annotated[annotation, meta] if meta else annotation), pattern
    raise TypeError(f"no msgspec equivalent for {annotation!r}: teach quacknet.scan.codec about it")


# Per derived Struct: its string fields, their patterns and the values known to pass ``_passes``
# (unpadded, and matching the pattern if there is one).
_STRINGS: dict[type, tuple[tuple[str, re.Pattern | None, set[str]], ...]] = {}
_KNOWN_MAX = 1 << 16  # values remembered per field


def derive(model: type[BaseModel], *, server_set: tuple[str, ...] = (), name: str | None = None) -> type[msgspec.Struct]:
    """A msgspec Struct with ``model``'s fields, types, constraints and field order. Patterns are
    checked after decoding, with a cache: msgspec would run the regex on every value, while device
    ids, MCCs and MNCs repeat. ``server_set`` fields are the server's to fill in: absent they
    decode as UNSET (a body that sends one is pydantic's to refuse), so the API stamps a decoded
    submission in place and encodes it whole as the Kafka message."""
    if model.model_config.get("extra") != "forbid":
        raise TypeError("the fast path mirrors extra='forbid' only")
    fields, strings = [], []
    for field, info in model.model_fields.items():
        kind, pattern = _msgspec_type(info.annotation, info.metadata)
        if field in server_set:
            fields.append((field, kind | msgspec.UnsetType, msgspec.UNSET))
        else:
            fields.append((field, kind) if info.is_required() else (field, kind, info.default))
        if info.annotation is str or str in typing.get_args(info.annotation):
            strings.append((field, re.compile(pattern) if pattern else None, set()))
    struct = msgspec.defstruct(name or f"Wire{model.__name__}", fields, kw_only=True, forbid_unknown_fields=True,
                               omit_defaults=True)
    _STRINGS[struct] = tuple(strings)
    return struct


WireScan = derive(Scan)
WireSubmission = derive(Scan, server_set=("received_at",), name="WireSubmission")  # what a phone sends
FIELDS = tuple(f.name for f in msgspec.structs.fields(WireScan))  # Scan's field order
_SCAN = msgspec.json.Decoder(WireScan)
_SUBMISSIONS = msgspec.json.Decoder(Union[WireSubmission, list[WireSubmission]])
_SENT_RECEIVED_AT = attrgetter("received_at")  # UNSET (falsy) unless a phone sent it
_ENCODER = msgspec.json.Encoder()
encode = _ENCODER.encode


def _passes(value: str, pattern: re.Pattern | None, known: set[str]) -> bool:
    """The string checks msgspec leaves to us. pydantic strips surrounding whitespace
    (``str_strip_whitespace``) before it checks a string, msgspec does not: a padded string is
    pydantic's to judge. Patterns are searched with Python's ``re`` (whose ``$`` also matches before
    a final newline, Rust's does not; such a string is padded, so it never gets that far). A value
    that passes is remembered, boundedly; the sets are only touched under the GIL, so the API's
    threads share them safely."""
    if value != value.strip() or (pattern is not None and pattern.search(value) is None):
        return False
    if len(known) >= _KNOWN_MAX:
        known.clear()
    known.add(value)
    return True


def _as_pydantic_would(item: msgspec.Struct) -> bool:
    """One message (the loader's path): each string value not yet known to pass is checked."""
    for name, pattern, known in _STRINGS[type(item)]:
        value = getattr(item, name)
        if value is not None and value not in known and not _passes(value, pattern, known):
            return False
    return True


def _all_as_pydantic_would(items: list[msgspec.Struct]) -> bool:
    """A body's items (the API's path): per field, the distinct values are gathered in C and only
    those not yet known to pass are checked (device ids, MCCs and carriers repeat within a body)."""
    for name, pattern, known in _STRINGS[type(items[0])] if items else ():
        values = set(map(attrgetter(name), items))
        values.discard(None)
        if not all(_passes(value, pattern, known) for value in values - known):
            return False
    return True


# msgspec rounds a seventh fractional digit of a time to the nearest microsecond, pydantic truncates.
# Such times are pydantic's to read, and so is any value with an escape (which could spell one).
_SUB_MICROSECOND = re.compile(rb"\.\d{7}(?<=\d:\d\d\.\d{7})")


def _times_may_round(raw: bytes) -> bool:
    return raw.find(b"\\") >= 0 or _SUB_MICROSECOND.search(raw) is not None


def decode_scan(value: bytes) -> msgspec.Struct | None:
    """A Kafka message value as a WireScan, or None: then ``quacknet.scan.model.decode`` decides."""
    if _times_may_round(value):
        return None
    try:
        scan = _SCAN.decode(value)
    except (ValueError, RecursionError):  # msgspec's errors, and invalid UTF-8 inside a string
        return None
    return scan if _as_pydantic_would(scan) else None


def decode_submissions(raw: bytes) -> list[msgspec.Struct] | None:
    """A request body (one scan or an array) as WireSubmissions, or None: then pydantic decides
    (also when a phone sent ``received_at``, which is the server's: pydantic refuses it)."""
    if _times_may_round(raw):
        return None
    try:
        parsed = _SUBMISSIONS.decode(raw)
    except (ValueError, RecursionError):  # msgspec's errors, and invalid UTF-8 inside a string
        return None
    items = parsed if isinstance(parsed, list) else [parsed]
    if any(map(_SENT_RECEIVED_AT, items)):
        return None
    return items if _all_as_pydantic_would(items) else None


def row(scan: msgspec.Struct | Scan, *lineage: Any) -> bytes:
    """A JSONCompactEachRow line for ClickHouse: the validated values written canonically (so the
    engine parses exactly what was validated, never a message's own spelling) in ``FIELDS`` order,
    then ``lineage``. The same bytes from either path; missing optional values are null. An
    array, not an object: cheaper to write and for the engine to parse. In field order, not
    ``CLICKHOUSE_TYPES`` order, because the insert names its columns (``ROW_COLUMNS``)."""
    values = msgspec.structs.astuple(scan) if isinstance(scan, msgspec.Struct) else [getattr(scan, f) for f in FIELDS]
    return _ENCODER.encode((*values, *lineage))


def encode_received(scans: list[msgspec.Struct] | list[ScanFields], received_at: dt.datetime) -> list[bytes]:
    """The Kafka values of one request's validated submissions, all stamped with the server clock:
    ``[encode(Scan.received(s, received_at)) for s in scans]`` without building a Scan each (the
    API's hot path). The fast path's WireSubmissions are stamped in place and encoded whole;
    pydantic's models (the slow path's; a list is all one or all the other) get the stamp spliced in."""
    at = to_millis(received_at)
    if scans and isinstance(scans[0], msgspec.Struct):
        for scan in scans:
            scan.received_at = at
        return list(map(_ENCODER.encode, scans))
    tail = b',"received_at":' + received_stamp(at) + b"}"
    return [scan.__pydantic_serializer__.to_json(scan, exclude_none=True)[:-1] + tail for scan in scans]


def validate_body(raw: bytes, now: dt.datetime) -> list | None:
    """The API's fast path for a whole body: msgspec, else pydantic's Rust core in one pass; then
    the rules. None when anything fails: the caller validates item by item to say which and why."""
    scans = decode_submissions(raw)
    if scans is None:
        return validate_whole_body(raw, now)
    return scans if follow_the_rules(scans, now) else None
