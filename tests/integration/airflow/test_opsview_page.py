"""The QuackNet operations page against the real broker and ClickHouse engine: its figures are what
Kafka and ClickHouse hold (lag per partition, its history, the DLQ, freshness, the audit, replays),
and its map's endpoints serve the stored scans."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from quacknet import kafka as qkafka
from quacknet.airflow import opsview
from quacknet.airflow.opsdata import AirflowRun
from quacknet.ops import audit
from quacknet.pipeline import LEDGER_COLUMNS
from tests.support.kafka import committed, end_offsets, produce, read_topic
from tests.support.loader import LoaderThread, count
from tests.support.waiting import wait_for


def test_the_pages_figures_are_what_kafka_and_clickhouse_hold(lsettings, ch):
    settings, db = lsettings, lsettings.clickhouse_database
    produce(settings, 600)
    producer = qkafka.producer(settings)
    for i in range(3):
        producer.produce(settings.scans_topic, key=b"poison", value=b"not json {%d" % i)
    assert producer.flush(30) == 0
    loader = LoaderThread(settings)
    try:
        wait_for(lambda: count(ch, settings) == 600 and sum(end_offsets(settings.model_copy(
            update={"scans_topic": settings.dlq_topic, "scans_partitions": 3})).values()) == 3, 60, "the loader")
        wait_for(lambda: sum(committed(settings, settings.loader_group).values()) == 603, 30, "the loader's commit")
    finally:
        loader.stop()
    produce(settings, 90)  # produced while the loader is stopped: lag

    old, new = dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC), dt.datetime(2026, 11, 26, 11, tzinfo=dt.UTC)
    audit.store(ch, db, old, [audit.Finding("retention", "scans", -1, False, 1, 2, "an old violation")])
    audit.store(ch, db, new, [audit.Finding("retention", "scans", -1, True, 2, 2, "scans: retention.ms = 2", "retention.ms"),
                              audit.Finding("completeness", "scans", 3, False, 7, 0, "scans[3]: 7 of offsets missing", "g")])
    ch.insert(f"{db}.load_ledger", [["scans", 1, 10, 59, "replay:manual__1"], ["scans", 0, 0, 99, "replay:manual__1"],
                                   ["scans", 0, 100, 199, "replay:manual__1"]], column_names=LEDGER_COLUMNS)
    counts = {"read": 250, "inserted": 0, "already_present": 240, "duplicates_in_batch": 7, "dead_lettered": 3}
    run = AirflowRun("manual__1", "success", new, new + dt.timedelta(seconds=42), {"topic": "scans"}, counts, None)

    client = TestClient(opsview.create_app(lambda: settings, runs=lambda: [run]))
    o = client.get("/api/overview?hours=1").json()

    ends, done = end_offsets(settings), committed(settings, settings.loader_group)
    lag = {row["partition"]: row["lag"] for row in o["lag"]["value"]}
    assert lag == {p: ends[p] - done[p] for p in ends} and sum(lag.values()) == 90
    history = o["history"]["value"]
    assert {int(p): values[-1] for p, values in history["lag"].items()} == lag  # the last point is now
    assert all(values[0] == 0 for values in history["lag"].values())  # an hour ago the topic was empty
    assert sum(rate for _, rate in history["produced"]) * o["window"]["step_s"] <= 693

    dlq = o["dead_letters"]["value"]
    assert dlq["size"] == len(read_topic(settings, settings.dlq_topic)) == 3
    assert sum(n for _, n in dlq["reasons"]) == 3 and {d["source_topic"] for d in dlq["latest"]} == {settings.scans_topic}

    fresh = o["freshness"]["value"]
    newest = ch.query(f"SELECT max(received_at), count() FROM {db}.scans_store").result_rows[0]
    assert fresh["stored_rows"] == newest[1] == 600 and fresh["recent_scans"] == 600
    assert fresh["newest_received_at"] == opsview.iso(newest[0])
    assert 0 <= fresh["p50_s"] <= fresh["p90_s"] <= fresh["p99_s"] < 60
    assert sum(n for _, n, _, _ in fresh["series"]) == 600

    findings = o["audit"]["value"]
    assert [(f["check"], f["ok"]) for f in findings] == [("completeness", False), ("retention", True)]
    [replay] = o["replays"]["value"]
    assert replay["counts"] == counts and replay["started"] == "2026-11-26T11:00:00.000Z"
    assert [(s["partition"], s["first"], s["last"], s["messages"]) for s in replay["stored"]] == [(0, 0, 199, 200), (1, 10, 59, 50)]

    page = client.get("/?hours=1")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "FAIL: 1 violation(s) of 2 checks in the audit of 2026-11-26 11:00:00 UTC" in page.text
    assert "scans[3]: 7 of offsets missing" in page.text and "an old violation" not in page.text
    assert "id='dlq-size' data-value='3'" in page.text
    for p, n in lag.items():
        assert f"<tr data-partition='{p}'><td>{p}</td>" in page.text and f"data-field='lag' data-value='{n}'" in page.text


def test_the_maps_endpoints_serve_the_stored_scans_as_h3_cells(lsettings, ch):
    settings, db = lsettings, lsettings.clickhouse_database
    produce(settings, 40)
    loader = LoaderThread(settings)
    try:
        wait_for(lambda: count(ch, settings) == 40, 60, "the loader")
    finally:
        loader.stop()
    client = TestClient(opsview.create_app(lambda: settings))
    newest = client.get("/api/coverage/newest").json()
    latest = ch.query(f"SELECT lat, lon, received_at FROM {db}.scans WHERE received_at = (SELECT max(received_at) FROM {db}.scans)"
                      ).result_rows  # produce() stamps a batch with one received_at: any of them is the newest
    assert (newest["lat"], newest["lon"]) in {(a, o) for a, o, _ in latest}
    assert newest["received_at"] == opsview.iso(latest[0][2])
    lat, lon = newest["lat"], newest["lon"]
    cell, n = ch.query(f"SELECT h3ToString(geoToH3({{lat:Float64}}, {{lon:Float64}}, 8)) AS c, "
                       f"(SELECT count() FROM {db}.scans WHERE h3ToString(h3_r8) = c)",
                       parameters={"lat": lat, "lon": lon}).result_rows[0]
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = client.get(f"/api/coverage?bbox={lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}&since={since}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/geo+json")
    features = {f["id"]: f for f in response.json()["features"]}
    assert features[cell]["properties"]["scans"] == n and features[cell]["geometry"]["type"] == "Polygon"
    too_big = client.get(f"/api/coverage?bbox=5,47,15,55&since={since}")
    assert too_big.status_code == 400 and "square degrees" in too_big.json()["detail"]
