"""The scan: one schema for the whole system.

The API validates phones' submissions with ``ScanIn``; the API adds the server
clock and produces a ``Scan`` to Kafka; the loader decodes and re-validates the
same ``Scan``; the ClickHouse columns follow it (``quacknet.scan.columns``).

Decisions, documented once:
- Unknown fields are rejected (422), not ignored: a typo such as ``rsrpp`` must
  not silently drop a measurement. New fields arrive with a new ``schema_version``,
  which the server learns before apps send it.
- ``received_at`` is the server's clock and may not be sent by a phone.
- Timestamps carry a timezone; naive times are ambiguous and rejected. They are written as
  RFC 3339 in UTC (``2026-11-26T12:00:00.123000Z``); ``received_at`` has millisecond precision.
- The Kafka message is UTF-8 JSON of ``Scan`` (``encode``): readable with any
  tool (``kafka-console-consumer``) and self-describing through ``schema_version``.
  Key = ``device_id`` so one
  phone's scans stay ordered in one partition. Fields that are absent are left out.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from operator import attrgetter
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
MAX_AGE = dt.timedelta(days=30)  # phones buffer scans while offline, not for months
MAX_SKEW = dt.timedelta(minutes=10)  # phone clocks run ahead a little, not more
# What the store keeps, whatever a message on Kafka says: no scan predates 2000 or follows 2199.
# (A message with a time in each of a hundred months would otherwise make a hundred partitions.)
STORED_FROM = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
STORED_UNTIL = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def to_millis(value: dt.datetime) -> dt.datetime:
    """UTC, truncated to milliseconds: the precision of the wire format and of ClickHouse's DateTime64(3)."""
    value = value.astimezone(dt.UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class Technology(str, enum.Enum):
    GSM = "GSM"
    CDMA = "CDMA"
    UMTS = "UMTS"
    LTE = "LTE"
    NR_NSA = "NR-NSA"
    NR_SA = "NR-SA"
    WIFI = "WIFI"


CELLULAR = {Technology.GSM, Technology.CDMA, Technology.UMTS, Technology.LTE, Technology.NR_NSA, Technology.NR_SA}
# Reference-signal measurements exist only on LTE and NR.
REFERENCE_SIGNAL = {Technology.LTE, Technology.NR_NSA, Technology.NR_SA}


class ScanFields(BaseModel):
    """A scan's fields and their ranges: checked entirely in pydantic's Rust core."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True, frozen=True)

    scan_id: uuid.UUID = Field(description="Made by the phone; a retry re-sends the same id.")
    device_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
    observed_at: AwareDatetime = Field(description="Phone clock, with timezone.")
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    accuracy_m: Annotated[float, Field(ge=0, le=100_000)]
    altitude_m: Annotated[float | None, Field(ge=-500, le=20_000)] = None
    technology: Technology
    mcc: Annotated[str | None, Field(pattern=r"^[2-7][0-9]{2}$")] = None
    mnc: Annotated[str | None, Field(pattern=r"^[0-9]{2,3}$")] = None
    carrier: Annotated[str | None, Field(max_length=64)] = None
    cell_id: Annotated[int | None, Field(ge=0, le=2**36 - 1)] = None  # NR cell identity is 36 bits
    pci: Annotated[int | None, Field(ge=0, le=1007)] = None
    band: Annotated[int | None, Field(ge=1, le=1024)] = None
    rsrp: Annotated[float | None, Field(ge=-156, le=-31, description="dBm, LTE/NR")] = None
    rsrq: Annotated[float | None, Field(ge=-43, le=20, description="dB, LTE/NR")] = None
    sinr: Annotated[float | None, Field(ge=-23, le=40, description="dB, LTE/NR")] = None
    rssi: Annotated[float | None, Field(ge=-120, le=0, description="dBm")] = None
    download_kbps: Annotated[float | None, Field(ge=0, le=100_000_000)] = None
    upload_kbps: Annotated[float | None, Field(ge=0, le=100_000_000)] = None
    latency_ms: Annotated[float | None, Field(ge=0, le=600_000)] = None
    jitter_ms: Annotated[float | None, Field(ge=0, le=600_000)] = None
    app_version: Annotated[str, Field(min_length=1, max_length=32)]
    schema_version: Literal[1] = Field(description="Scan schema version this server understands.")


def time_problem(observed_at: dt.datetime, now: dt.datetime) -> str | None:
    if observed_at > now + MAX_SKEW:
        return f"is more than {int(MAX_SKEW.total_seconds() // 60)} minutes in the future"
    if observed_at < now - MAX_AGE:
        return f"is more than {MAX_AGE.days} days in the past"
    return None


def stored_problem(scan) -> str | None:
    """The rule for a scan read back from Kafka (the API's clock rule no longer applies)."""
    for name in ("observed_at", "received_at"):
        value = getattr(scan, name)
        if not STORED_FROM <= value < STORED_UNTIL:
            return f"{name} {value.isoformat()} is outside what the store keeps ({STORED_FROM.year}..{STORED_UNTIL.year - 1})"
    return None


def network_problem(scan: ScanFields) -> str | None:
    if scan.technology in CELLULAR and (scan.mcc is None or scan.mnc is None):
        return f"mcc and mnc are required for {scan.technology.value}"
    if scan.technology not in REFERENCE_SIGNAL:
        given = [f for f in ("rsrp", "rsrq", "sinr") if getattr(scan, f) is not None]
        if given:
            return f"{', '.join(given)} only exist on LTE and NR, not {scan.technology.value}"
    return None


class ScanIn(ScanFields):
    """What a phone submits: the fields plus the rules that need the clock or several fields."""

    @field_validator("observed_at")
    @classmethod
    def _plausible_time(cls, value: dt.datetime, info: ValidationInfo) -> dt.datetime:
        problem = time_problem(value, (info.context or {}).get("now") or dt.datetime.now(dt.UTC))
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _network_fields_fit_the_technology(self) -> "ScanIn":
        problem = network_problem(self)
        if problem:
            raise ValueError(problem)
        return self


class Scan(ScanFields):
    """A scan as it travels on Kafka and lands in ClickHouse: the phone's fields plus the server clock.
    Stored messages are not re-judged by today's clock (a replay a week later must still decode)."""

    received_at: AwareDatetime

    @classmethod
    def received(cls, scan: ScanFields, received_at: dt.datetime) -> "Scan":
        return cls.model_construct(**dict(scan), received_at=to_millis(received_at))


def encode(scan: Scan) -> bytes:
    """The Kafka message value."""
    return scan.model_dump_json(exclude_none=True).encode()


_DATETIME = TypeAdapter(AwareDatetime)


def received_stamp(received_at: dt.datetime) -> bytes:
    """The server clock as ``encode`` writes it, computed once per request."""
    return _DATETIME.dump_json(to_millis(received_at))


def decode(value: bytes) -> Scan:
    """A Kafka message value back to a Scan; raises pydantic.ValidationError on anything else."""
    return Scan.model_validate_json(value)


def kafka_key(scan: ScanIn) -> bytes:
    return scan.device_id.encode()


def validate_submission(item: Any, now: dt.datetime) -> ScanIn:
    return ScanIn.model_validate(item, context={"now": now})


_ONE_OR_MANY = TypeAdapter(ScanFields | list[ScanFields])


def validate_whole_body(raw: bytes, now: dt.datetime) -> list[ScanFields] | None:
    """A whole body in one pass of pydantic's Rust core, then the rules. None when anything fails:
    the caller then validates item by item (``validate_submission``) to say which and why."""
    try:
        parsed = _ONE_OR_MANY.validate_json(raw)
    except (ValidationError, RecursionError):
        return None
    scans = parsed if isinstance(parsed, list) else [parsed]
    return scans if follow_the_rules(scans, now) else None


def follow_the_rules(scans: list, now: dt.datetime) -> bool:
    """The ScanIn rules that need the clock or several fields, for scans checked field by field.
    The clock rule over a whole body at once: its earliest and latest times, compared in C."""
    if not scans:
        return True
    times = list(map(_OBSERVED_AT, scans))
    if time_problem(min(times), now) or time_problem(max(times), now):
        return False
    return not any(map(network_problem, scans))


_OBSERVED_AT = attrgetter("observed_at")
