"""The scan, one schema for the whole system: the pydantic model that decides what a scan is
(``model``), the fast msgspec codec held to it (``codec``), and how it is stored (``columns``)."""

from quacknet.scan.codec import (
    FIELDS,
    WireScan,
    WireSubmission,
    decode_scan,
    decode_submissions,
    encode_received,
    row,
    validate_body,
)
from quacknet.scan.columns import CLICKHOUSE_TYPES, LINEAGE, ROW_COLUMNS
from quacknet.scan.model import (
    MAX_AGE,
    MAX_SKEW,
    SCHEMA_VERSION,
    Scan,
    ScanFields,
    ScanIn,
    Technology,
    decode,
    encode,
    kafka_key,
    to_millis,
    validate_submission,
)

__all__ = [
    "CLICKHOUSE_TYPES", "FIELDS", "LINEAGE", "MAX_AGE", "MAX_SKEW", "ROW_COLUMNS", "SCHEMA_VERSION", "Scan",
    "ScanFields", "ScanIn", "Technology", "WireScan", "WireSubmission", "decode", "decode_scan", "decode_submissions",
    "encode", "encode_received", "kafka_key", "row", "to_millis", "validate_body", "validate_submission",
]
