"""Decode and validate one Kafka message: a scan, or poison with the reason it will never load.

Total over every input: whatever the bytes, the answer is a scan or ``Poison``; a message can
never stop the pipeline. Only a bug in this code (a ``TypeError``, say) propagates.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message
from pydantic import ValidationError

from quacknet.scan import SCHEMA_VERSION, Scan, WireScan, decode, decode_scan
from quacknet.scan.model import stored_problem

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Poison:
    """A message that will never load: it goes to the dead-letter topic with the reason."""

    message: Message
    reason: str  # undecodable | schema_invalid | unknown_schema_version
    error: str


def decode_message(msg: Message) -> Scan | WireScan | Poison:
    """A scan (from the fast path, or from pydantic when the fast path cannot vouch for it) or poison."""
    scan = _decode(msg)
    if type(scan) is not Poison and (problem := stored_problem(scan)):
        return Poison(msg, "schema_invalid", problem)
    return scan


def _decode(msg: Message) -> Scan | WireScan | Poison:
    value = msg.value()
    if value is None:
        return Poison(msg, "undecodable", "empty message value")
    fast = decode_scan(value)
    if fast is not None:
        return fast
    try:
        return decode(value)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["loc"] == ("schema_version",) for e in errors):
            return Poison(msg, "unknown_schema_version", f"schema_version is not {SCHEMA_VERSION}")
        if any(e["type"] in ("json_invalid", "json_type") for e in errors):
            return Poison(msg, "undecodable", str(exc)[:MAX_ERROR_CHARS])
        return Poison(msg, "schema_invalid", str(exc)[:MAX_ERROR_CHARS])
    except (ValueError, RecursionError) as exc:  # what pydantic itself cannot parse
        return Poison(msg, "undecodable", f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
