"""GET /v1/coverage and `python -m quacknet coverage` against the real engine: exact figures for
known scans, bounds and errors, the scope."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys

import pytest

from api import create_app
from devtools.samples import NATIVE_COLUMNS, native_row, scan_payload
from quacknet.apikeys import SCOPE_READ_COVERAGE, SCOPE_WRITE_SCANS, ApiKey, KeyStore, digest, new_key
from quacknet.scan import Scan, validate_submission

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
READER, WRITER = new_key(), new_key()
BERLIN = "13.30,52.48,13.47,52.56"


def _cell_scans(lat: float, lon: float, technology: str, values: list[tuple[float | None, float | None]], device: str):
    out = []
    for i, (rsrp, download) in enumerate(values):
        payload = scan_payload(device, now=NOW, rng=random.Random(hash((lat, technology, i))), lat=lat, lon=lon,
                               technology=technology, rsrp=rsrp, rsrq=None if rsrp is None else -10.0,
                               sinr=None if rsrp is None else 10.0, download_kbps=download)
        if technology == "WIFI":
            payload = {k: v for k, v in payload.items() if k not in ("mcc", "mnc", "rsrp", "rsrq", "sinr")}
        out.append(Scan.received(validate_submission(payload, NOW), NOW))
    return out


@pytest.fixture
def coverage_app(lsettings, ch):
    db = lsettings.clickhouse_database
    cells = {
        "alex": _cell_scans(52.5219, 13.4132, "LTE", [(-90.0, 50_000.0), (-100.0, 10_000.0), (-95.0, None)], "a"),
        "alex_nr": _cell_scans(52.5219, 13.4132, "NR-SA", [(-80.0, 300_000.0), (-85.0, 200_000.0)], "b"),
        "tiergarten": _cell_scans(52.5145, 13.3501, "WIFI", [(None, 120_000.0)], "c"),
        "potsdam": _cell_scans(52.3906, 13.0645, "LTE", [(-110.0, 1_000.0)], "d"),  # outside the Berlin box
    }
    rows = [native_row(s, "t", 0, i) for i, s in enumerate(s for group in cells.values() for s in group)]
    ch.insert(f"{db}.scans_store", rows, column_names=NATIVE_COLUMNS)
    keys = KeyStore([ApiKey("reader", digest(READER), frozenset({SCOPE_READ_COVERAGE}), 1000),
                     ApiKey("writer", digest(WRITER), frozenset({SCOPE_WRITE_SCANS}), 1000)])
    app = create_app(lsettings, keys=keys)
    yield app.test_client(), lsettings
    app.extensions["quacknet.close"]()


def _get(client, key=READER, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.get(f"/v1/coverage?{query}", headers={"X-API-Key": key} if key else {})


def test_exact_figures_per_cell_and_technology_as_geojson(coverage_app):
    client, _ = coverage_app
    since = (NOW - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    resp = _get(client, bbox=BERLIN, since=since)
    assert resp.status_code == 200 and resp.mimetype == "application/geo+json"
    doc = resp.get_json(force=True)
    assert doc["type"] == "FeatureCollection" and doc["bbox"] == [13.30, 52.48, 13.47, 52.56]
    by_cell = {f["id"]: f["properties"] for f in doc["features"]}
    assert len(by_cell) == 2  # Alexanderplatz and Tiergarten; Potsdam lies outside the box
    alex = next(p for p in by_cell.values() if "LTE" in p["technologies"])
    assert alex["scans"] == 5
    # exact medians (of an even count, the upper middle value, as ClickHouse's quantileExact); NULLs left out
    assert alex["technologies"] == {
        "LTE": {"scans": 3, "median_rsrp_dbm": -95.0, "median_download_kbps": 50_000.0},
        "NR-SA": {"scans": 2, "median_rsrp_dbm": -80.0, "median_download_kbps": 300_000.0}}
    wifi = next(p for p in by_cell.values() if "WIFI" in p["technologies"])
    assert wifi["technologies"]["WIFI"] == {"scans": 1, "median_rsrp_dbm": None, "median_download_kbps": 120_000.0}
    for feature in doc["features"]:
        ring = feature["geometry"]["coordinates"][0]
        assert feature["geometry"]["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) == 7  # a hexagon, closed


def test_the_technology_filter_and_the_window(coverage_app):
    client, _ = coverage_app
    since = (NOW - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    only_nr = _get(client, bbox=BERLIN, since=since, technology="NR-SA").get_json(force=True)
    assert [list(f["properties"]["technologies"]) for f in only_nr["features"]] == [["NR-SA"]]
    before = (NOW - dt.timedelta(days=3)).isoformat().replace("+00:00", "Z")
    until = (NOW - dt.timedelta(days=2)).isoformat().replace("+00:00", "Z")
    assert _get(client, bbox=BERLIN, since=before, until=until).get_json(force=True)["features"] == []


@pytest.mark.parametrize("params,status,message", [
    ({"since": "2026-11-29T00:00:00Z"}, 400, "bbox is required"),
    ({"bbox": "0,0,5,5", "since": "2026-11-29T00:00:00Z"}, 400, "square degrees"),
    ({"bbox": BERLIN, "since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, 400, "at most 31 days"),
    ({"bbox": BERLIN, "since": "2026-11-29T00:00:00"}, 400, "no timezone"),
    ({"bbox": BERLIN, "since": "2026-11-29T00:00:00Z", "technology": "6G"}, 400, "technology must be one of"),
])
def test_bad_requests_are_400_in_the_apis_shape(coverage_app, params, status, message):
    client, _ = coverage_app
    resp = _get(client, **params)
    assert resp.status_code == status and resp.json["error"] == "invalid_input" and message in resp.json["message"]


def test_the_coverage_scope_is_required(coverage_app):
    client, _ = coverage_app
    assert _get(client, key=None, bbox=BERLIN, since="2026-11-29T00:00:00Z").status_code == 401
    forbidden = _get(client, key=WRITER, bbox=BERLIN, since="2026-11-29T00:00:00Z")
    assert forbidden.status_code == 403 and "coverage:read" in forbidden.json["message"]


def test_too_many_cells_is_a_readable_400(coverage_app, monkeypatch):
    client, _ = coverage_app
    monkeypatch.setattr("quacknet.coverage.MAX_CELLS", 1)
    resp = _get(client, bbox=BERLIN, since=(NOW - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z"))
    assert resp.status_code == 400 and "more than 1 cells" in resp.json["message"]


def test_a_schema_behind_is_a_503_that_says_what_to_run(coverage_app, ch):
    client, settings = coverage_app
    ch.command(f"ALTER TABLE {settings.clickhouse_database}.schema_migrations DELETE WHERE version = 3 SETTINGS mutations_sync = 1")
    resp = _get(client, bbox=BERLIN, since="2026-11-29T00:00:00Z")
    assert resp.status_code == 503 and "python -m quacknet migrate" in resp.json["message"]


def test_the_cli_prints_the_same_cells(coverage_app):
    _, settings = coverage_app
    since = (NOW - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    env = {**os.environ, **settings.to_env()}
    as_json = subprocess.run([sys.executable, "-m", "quacknet", "coverage", "--bbox", BERLIN, "--since", since, "--json"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    assert len(json.loads(as_json.stdout)["features"]) == 2
    table = subprocess.run([sys.executable, "-m", "quacknet", "coverage", "--bbox", BERLIN, "--since", since],
                           env=env, capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["H3", "CELL", "TECHNOLOGY", "SCANS", "MEDIAN", "RSRP", "(dBm)", "MEDIAN", "DOWNLOAD", "(Mbit/s)"]
    assert any(" LTE " in f" {line} " and "-95.0" in line and "50.0" in line for line in lines)
    assert lines[-1].startswith("2 cells, 6 scans")
    refused = subprocess.run([sys.executable, "-m", "quacknet", "coverage", "--bbox", "1,2,3", "--since", since],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "bbox must be four finite numbers" in refused.stderr


def test_scans_posted_through_the_api_come_back_in_coverage_with_exact_figures(lsettings, ch):
    """End to end: POST /v1/scans, the loader, GET /v1/coverage, figures computed here from the posts."""
    from tests.support.loader import LoaderThread, count
    from tests.support.waiting import wait_for

    both = new_key()
    keys = KeyStore([ApiKey("both", digest(both), frozenset({SCOPE_READ_COVERAGE, SCOPE_WRITE_SCANS}), 1000)])
    app = create_app(lsettings, keys=keys)
    client = app.test_client()
    rng = random.Random(11)
    posted = [scan_payload("e2e", now=NOW, rng=rng, lat=52.5219, lon=13.4132, technology="LTE",
                           rsrp=float(rng.randint(-120, -70)), download_kbps=float(rng.randint(1_000, 90_000)))
              for _ in range(9)]
    try:
        resp = client.post("/v1/scans?wait=true", json=posted, headers={"X-API-Key": both})
        assert resp.status_code == 202, resp.json
        loader = LoaderThread(lsettings)
        try:
            wait_for(lambda: count(ch, lsettings) == 9, 60, "the posted scans in the store")
        finally:
            loader.stop()
        since = (NOW - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        doc = _get(client, key=both, bbox=BERLIN, since=since).get_json(force=True)
    finally:
        app.extensions["quacknet.close"]()
    [feature] = doc["features"]
    lte = feature["properties"]["technologies"]["LTE"]
    assert lte == {"scans": 9, "median_rsrp_dbm": sorted(p["rsrp"] for p in posted)[4],
                   "median_download_kbps": sorted(p["download_kbps"] for p in posted)[4]}
