import datetime as dt
import json

from devtools.samples import scan_payload
from quacknet.scan import CLICKHOUSE_TYPES, ROW_COLUMNS, Scan, row, validate_submission
from quacknet.warehouse.migrations import MIGRATIONS

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def test_every_scan_field_has_a_clickhouse_column_and_no_more():
    assert sorted(CLICKHOUSE_TYPES) == sorted(Scan.model_fields)


def test_a_stored_row_follows_the_column_order():
    scan = Scan.received(validate_submission(scan_payload(now=NOW), NOW), NOW)
    values = json.loads(row(scan, "t", 3, 42))
    assert len(values) == len(ROW_COLUMNS) == len(CLICKHOUSE_TYPES) + 3
    stored = dict(zip(ROW_COLUMNS, values, strict=True))
    assert stored["technology"] == "LTE" and stored["scan_id"] == str(scan.scan_id)
    assert (stored["kafka_topic"], stored["kafka_partition"], stored["kafka_offset"]) == ("t", 3, 42)


def test_migrations_are_numbered_in_order_and_rerunnable():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    for migration in MIGRATIONS:
        assert all(" IF NOT EXISTS " in s for s in migration.statements)
    store = MIGRATIONS[0].statements[0]
    assert "ORDER BY (h3_r8, technology, observed_at, scan_id)" in store and "PARTITION BY toYYYYMM(observed_at)" in store
    assert "received_at" not in store.split("ORDER BY")[1]  # a retry's new receive time must not split it from the first copy
