"""Operators' parameters (DAG forms, CLI flags) as typed values, strictly: what is not exactly
right is an ``InvalidInput`` that names the parameter and says what it must look like. Nothing is
coerced: ``"59"`` is not an offset, ``1.9`` is not a partition, a time without a zone is refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from quacknet.errors import InvalidInput

EXAMPLE_TIME = "2026-11-26T12:00:00Z"


def parse_time(value: Any, name: str) -> dt.datetime:
    """An ISO 8601 time with a timezone (``Z`` or an offset), as an aware datetime."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be an ISO 8601 time such as {EXAMPLE_TIME}, got {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name}={value!r} is not an ISO 8601 time (e.g. {EXAMPLE_TIME})") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name}={value!r} has no timezone; give UTC, e.g. {EXAMPLE_TIME}")
    try:
        parsed.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 has no UTC
        raise InvalidInput(f"{name}={value!r} lies outside the times UTC can express") from None
    return parsed


def optional_time(value: Any, name: str) -> dt.datetime | None:
    return None if value in (None, "") else parse_time(value, name)


def integer(value: Any, name: str, minimum: int | None = None) -> int:
    """A JSON integer (not a bool, a float or a string of digits)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}, got {value}")
    return value


def partition_key(key: Any, name: str) -> int:
    """A partition named as a JSON object key: the string of a non-negative integer."""
    text = key if isinstance(key, str) else None
    if text is None or not text.isdigit() or not text.isascii():
        raise InvalidInput(f'{name}: partition keys must be non-negative integers written as strings, like "0"; got {key!r}')
    return int(text)


def partitions(value: Any, name: str = "partitions") -> list[int] | None:
    """A list of distinct non-negative partition numbers; empty or absent means all."""
    if value in (None, []):
        return None
    if not isinstance(value, list):
        raise InvalidInput(f"{name} must be a list of partition numbers, got {value!r}")
    chosen = [integer(p, f"{name}[{i}]", minimum=0) for i, p in enumerate(value)]
    if len(set(chosen)) != len(chosen):
        raise InvalidInput(f"{name} lists a partition twice: {value!r}")
    return sorted(chosen)


def mapping(value: Any, name: str) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object, got {value!r}")
    return value
