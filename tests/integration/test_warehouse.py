"""Migrations and the exact view on the real ClickHouse engine."""

from __future__ import annotations

import datetime as dt
import uuid

from devtools.samples import NATIVE_COLUMNS, native_row, scan_payload
from quacknet import coverage
from quacknet.scan import Scan, validate_submission
from quacknet.warehouse.migrations import MIGRATIONS, migrate

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _rows(payloads, received_at=NOW, offset0=0):
    out = []
    for i, p in enumerate(payloads):
        scan = Scan.received(validate_submission(p, NOW), received_at)
        out.append(native_row(scan, "netintel.scan.events", 0, offset0 + i))
    return out


def test_migrations_apply_once_and_rerun_harmlessly(ch, database):
    assert migrate(ch, database) == [m.version for m in MIGRATIONS]
    assert migrate(ch, database) == []
    assert ch.command(f"SELECT count() FROM {database}.schema_migrations FINAL") == len(MIGRATIONS)
    tables = {r[0] for r in ch.query(f"SELECT name FROM system.tables WHERE database = '{database}'").result_rows}
    assert {"scans_store", "scans", "schema_migrations"} <= tables


def test_a_plain_count_on_scans_is_exact_despite_retries_and_replays(ch, database):
    migrate(ch, database)
    payloads = [scan_payload(f"phone-{i % 4}") for i in range(500)]
    ch.insert(f"{database}.scans_store", _rows(payloads), column_names=NATIVE_COLUMNS)
    # a phone retry of 50 scans (new receive time), then a replay of 200 (identical rows), each its own part
    ch.insert(f"{database}.scans_store", _rows(payloads[:50], NOW + dt.timedelta(seconds=30), 500), column_names=NATIVE_COLUMNS)
    ch.insert(f"{database}.scans_store", _rows(payloads[100:300], NOW, 100), column_names=NATIVE_COLUMNS)
    assert ch.command(f"SELECT count() FROM {database}.scans_store") == 750  # the store holds the copies
    assert ch.command(f"SELECT count() FROM {database}.scans") == 500  # analysts see each scan once
    assert ch.command(f"SELECT count() FROM {database}.scans WHERE device_id = 'phone-1'") == 125
    # of a retry's copies, the one received last wins
    first = uuid.UUID(payloads[0]["scan_id"])
    got = ch.query(f"SELECT received_at, kafka_offset FROM {database}.scans WHERE scan_id = {{id:UUID}}", parameters={"id": first})
    assert got.result_rows[0][1] == 500


def test_h3_cell_and_coverage_query(ch, database):
    migrate(ch, database)
    berlin = [scan_payload(f"b{i}", lat=52.52, lon=13.40, rsrp=float(-100 + i), download_kbps=float(1000 * (i + 1)))
              for i in range(5)]
    wifi = [scan_payload("w", lat=52.52, lon=13.40, technology="WIFI", mcc=None, mnc=None, rsrp=None, rsrq=None,
                         sinr=None, rssi=-60.0, download_kbps=None)]
    ch.insert(f"{database}.scans_store", _rows(berlin + wifi), column_names=NATIVE_COLUMNS)
    assert ch.command(f"SELECT DISTINCT h3ToString(h3_r8) FROM {database}.scans") == "881f1d4895fffff"  # Berlin
    box = coverage.BBox(13.0, 52.0, 14.0, 53.0)
    cells = coverage.cells(ch, database, coverage.CoverageQuery(box, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1)))
    assert [c.h3 for c in cells] == ["881f1d4895fffff"]
    by_tech = cells[0].technologies
    assert by_tech["LTE"].scans == 5 and by_tech["LTE"].median_rsrp_dbm == -98 and by_tech["LTE"].median_download_kbps == 3000
    assert by_tech["WIFI"].scans == 1 and by_tech["WIFI"].median_rsrp_dbm is None
    assert coverage.cells(ch, database, coverage.CoverageQuery(box, NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=2))) == []
