"""How a scan is stored: ClickHouse column types, lineage columns, and the loader's insert order.

The warehouse builds its DDL from these; a unit test keeps ``CLICKHOUSE_TYPES`` in step with
``Scan``'s fields.
"""

from __future__ import annotations

from quacknet.scan.codec import FIELDS

# ClickHouse column types of a stored scan, in column order.
CLICKHOUSE_TYPES: dict[str, str] = {
    "scan_id": "UUID",
    "device_id": "String",
    "observed_at": "DateTime64(3, 'UTC')",
    "received_at": "DateTime64(3, 'UTC')",
    "lat": "Float64",
    "lon": "Float64",
    "accuracy_m": "Float32",
    "altitude_m": "Nullable(Float32)",
    "technology": "LowCardinality(String)",
    "mcc": "LowCardinality(Nullable(String))",
    "mnc": "LowCardinality(Nullable(String))",
    "carrier": "LowCardinality(Nullable(String))",
    "cell_id": "Nullable(UInt64)",
    "pci": "Nullable(UInt16)",
    "band": "Nullable(UInt16)",
    "rsrp": "Nullable(Float32)",
    "rsrq": "Nullable(Float32)",
    "sinr": "Nullable(Float32)",
    "rssi": "Nullable(Float32)",
    "download_kbps": "Nullable(Float64)",
    "upload_kbps": "Nullable(Float64)",
    "latency_ms": "Nullable(Float32)",
    "jitter_ms": "Nullable(Float32)",
    "app_version": "LowCardinality(String)",
    "schema_version": "UInt8",
}

# Where each stored row came from: for completeness checks and replays.
LINEAGE: dict[str, str] = {"kafka_topic": "LowCardinality(String)", "kafka_partition": "UInt16", "kafka_offset": "UInt64"}

# The order of ``codec.row``'s values: the columns every insert into the store names.
ROW_COLUMNS: list[str] = [*FIELDS, *LINEAGE]
