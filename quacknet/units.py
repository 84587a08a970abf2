"""Numbers as people read them: bytes, durations, counts and rates in human units.

Used wherever a figure is shown to an operator (the audit's messages, the operations page):
"595 KiB", never "0.00 GiB"; "3 min 20 s", never "200000 ms".
"""

from __future__ import annotations

import math

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _significant(value: float) -> str:
    """Three significant digits at most, without a pointless fraction: 5.06, 59.5, 595."""
    if value >= 100 or value == int(value) and value >= 10:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def human_bytes(n: float) -> str:
    """Binary units (the disk and retention.bytes are powers of two): 609,280 -> "595 KiB"."""
    if n is None or not math.isfinite(n):
        return "unknown"
    if n < 0:
        return "-" + human_bytes(-n)
    if n < 1024:
        return f"{n:.0f} B"
    exponent = min(int(math.log(n, 1024)), len(_BYTE_UNITS) - 1)
    value = n / 1024 ** exponent
    if round(value, 2) >= 1024 and exponent < len(_BYTE_UNITS) - 1:  # 1023.999 KiB reads as 1.00 MiB
        exponent, value = exponent + 1, value / 1024
    return f"{_significant(value)} {_BYTE_UNITS[exponent]}"


def human_duration(seconds: float) -> str:
    """"250 ms", "1.24 s", "42 s", "3 min 20 s", "5 h 7 min", "3 d 4 h"."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def human_count(n: float) -> str:
    """Exact below a million, with separators ("12,345"); above, "1.23 M", "4.50 G"."""
    if n is None or not math.isfinite(n):
        return "unknown"
    if n < 0:
        return "-" + human_count(-n)
    if n < 1_000_000:
        return f"{n:,.0f}" if n == int(n) else f"{n:,.1f}"
    for divisor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if n >= divisor:
            return f"{_significant(n / divisor)} {unit}"
    raise AssertionError("unreachable")


def human_rate(per_second: float, what: str = "") -> str:
    """"12.3 /s", "1.2 k/s" (optionally "scans/s")."""
    suffix = f" {what}/s" if what else "/s"
    if per_second is None or not math.isfinite(per_second):
        return "unknown"
    if per_second >= 1000:
        return f"{_significant(per_second / 1000)} k{suffix}"
    if per_second >= 100 or per_second == 0:
        return f"{per_second:.0f}{suffix}"
    if per_second >= 10:
        return f"{per_second:.1f}{suffix}"
    return f"{per_second:.2f}{suffix}"
