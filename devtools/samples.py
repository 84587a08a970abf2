"""Synthetic but realistic scans, for tests, benchmarks and the soak run."""

from __future__ import annotations

import datetime as dt
import random
import uuid

from quacknet.scan import CLICKHOUSE_TYPES, LINEAGE, Scan


def scan_payload(device: str = "device-1", *, now: dt.datetime | None = None, rng: random.Random | None = None, **over) -> dict:
    rng = rng or random.Random()
    now = now or dt.datetime.now(dt.UTC)
    body = {
        "scan_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "device_id": device,
        "observed_at": (now - dt.timedelta(seconds=rng.randint(0, 600))).isoformat(),
        "lat": round(rng.uniform(47.3, 55.0), 6), "lon": round(rng.uniform(5.9, 15.0), 6),
        "accuracy_m": round(rng.uniform(3, 50), 1),
        "technology": "LTE", "mcc": "262", "mnc": "01", "carrier": "Telekom.de",
        "cell_id": rng.randint(1, 2**28), "pci": rng.randint(0, 503), "band": 3,
        "rsrp": float(rng.randint(-130, -70)), "rsrq": float(rng.randint(-20, -3)), "sinr": float(rng.randint(-5, 30)),
        "download_kbps": round(rng.uniform(1_000, 150_000), 1), "upload_kbps": round(rng.uniform(500, 50_000), 1),
        "latency_ms": round(rng.uniform(10, 120), 1), "jitter_ms": round(rng.uniform(0, 20), 1),
        "app_version": "3.2.1", "schema_version": 1,
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


# Scans as Native-insert rows, for tests and benchmarks that write the store directly (the product
# inserts JSONCompactEachRow lines through quacknet.pipeline).
NATIVE_COLUMNS = [*CLICKHOUSE_TYPES, *LINEAGE]  # the order of native_row's values


def native_row(scan: Scan, *lineage) -> list:
    """A stored scan's values in ``CLICKHOUSE_TYPES`` order, then ``lineage``."""
    values = dict(scan)
    values["technology"] = scan.technology.value
    return [*(values[name] for name in CLICKHOUSE_TYPES), *lineage]
