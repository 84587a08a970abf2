import datetime as dt
import json

from devtools.samples import scan_payload
from quacknet.scan import CLICKHOUSE_TYPES, ROW_COLUMNS, Scan, row, validate_submission
from quacknet.warehouse.migrations import (
    CONTENT_COLUMNS,
    MIGRATIONS,
    SINGLE_SERVER,
    VERSION,
    Layout,
    scans_store_ddl,
)

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
    for layout in (SINGLE_SERVER, Layout("quacknet")):
        for migration in MIGRATIONS:
            for step in migration.steps(layout):
                # SQL creates only what is missing; the other steps look at the schema first
                # (their re-runs are tested on the engine: tests/integration/test_store_migration.py)
                if isinstance(step, str):
                    assert " IF NOT EXISTS " in step or step.startswith("CREATE OR REPLACE VIEW "), step
                else:
                    assert callable(step), step
    first = MIGRATIONS[0].statements()[0]  # history: the design migration 4 moves away from
    assert "ORDER BY (h3_r8, technology, observed_at, scan_id)" in first and "PARTITION BY toYYYYMM(observed_at)" in first


def test_the_store_is_keyed_by_scan_id_alone_and_versioned_by_receive_time():
    """Every copy of a scan has the same sorting key (and the table no partitions): copies collapse
    whatever else they differ in, and the one received last wins."""
    store = scans_store_ddl(SINGLE_SERVER, "scans_store")
    assert store.rstrip().endswith("ORDER BY scan_id") and "PARTITION BY" not in store
    assert "ENGINE = ReplacingMergeTree(version)" in store
    assert "version UInt128 MATERIALIZED " + VERSION in store
    assert VERSION.index("received_at") < VERSION.index("kafka_partition") < VERSION.index("kafka_offset")
    assert set(CONTENT_COLUMNS) == set(CLICKHOUSE_TYPES) - {"scan_id", "received_at"}
    assert [s for s in MIGRATIONS[3].statements() if "scans_store_next" in s] == [
        store.replace("{db}.scans_store", "{db}.scans_store_next")]


def test_the_view_lets_only_lookups_by_scan_id_run_before_final():
    """The exact view moves conditions to PREWHERE under FINAL; ClickHouse moves only those on the
    sorting key, which is scan_id alone: any other condition still judges the row FINAL kept."""
    [view] = [s for s in MIGRATIONS[3].statements() if s.startswith("CREATE OR REPLACE VIEW {db}.scans ")]
    assert view.endswith("FROM {db}.scans_store FINAL SETTINGS optimize_move_to_prewhere_if_final = 1")
    assert scans_store_ddl(SINGLE_SERVER, "scans_store").rstrip().endswith("ORDER BY scan_id")
