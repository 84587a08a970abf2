"""The QuackNet pages in a real browser (headless Chromium, 1440x900) inside the real Airflow API
server, behind its login: the operations page's figures against Kafka and ClickHouse, the map's
hexagon for scans posted through the ingest API in this test, and the way a logged-out browser is
sent to Airflow's login page. Screenshots of both pages go to $QUACKNET_SCREENSHOTS (not committed).

One stack for the module: Airflow's four components, the ingest API and a loader on a topic, DLQ,
group and database of the module's own. The scenario (posted scans, poison, a replay through the
REST API, a stopped loader with a backlog, an audit run) is set up once; each test reads it."""

from __future__ import annotations

import json
import os
import random
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from devtools import airflow
from devtools import kafka as devkafka
from devtools.samples import scan_payload
from devtools.services import AIRFLOW, API
from devtools.supervisor import Supervisor, free_port
from quacknet import kafka as qkafka
from quacknet import warehouse
from quacknet.apikeys import SCOPE_WRITE_SCANS, add_key
from quacknet.warehouse.migrations import migrate
from tests.support.kafka import committed, end_offsets, read_topic
from tests.support.loader import LoaderThread, count
from tests.support.waiting import wait_for

CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright cannot download browsers here
SCREENSHOTS = Path(os.environ.get("QUACKNET_SCREENSHOTS", "/tmp/quacknet-screenshots"))
VIEWPORT = {"width": 1440, "height": 900}
ALEXANDERPLATZ = (52.52192, 13.41321)
RSRP = [-71.0, -75.0, -78.0, -80.0, -84.0, -86.0, -88.0, -90.0, -93.0, -97.0, -101.0, -109.0]
SPREAD, BACKLOG, POISON = 300, 60, 3


@dataclass
class Scenario:
    settings: object
    base: str
    device: str
    posted_at_cell: int
    run_id: str  # the replay's Airflow run


def _post(settings, key: str, scans: list[dict]) -> None:
    request = urllib.request.Request(f"http://{settings.api_host}:{settings.api_port}/v1/scans", data=json.dumps(scans).encode(),
                                     headers={"X-API-Key": key, "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202


def _active_runs(settings, dag_id: str, jwt: str) -> int:
    query = urllib.parse.urlencode([("state", "queued"), ("state", "running")])
    return airflow.api_call(settings, "GET", f"/api/v2/dags/{dag_id}/dagRuns?{query}", token=jwt)["total_entries"]


@pytest.fixture(scope="module")
def scenario(stack, admin, tmp_path_factory):
    name = f"t_opsview_{uuid.uuid4().hex[:8]}"
    topic, dlq = name.replace("_", "."), name.replace("_", ".") + ".dlq"
    for t, partitions in ((topic, stack.scans_partitions), (dlq, 3)):
        admin.create_topics([NewTopic(t, partitions, 1)])[t].result(timeout=30)
    ch = warehouse.client(stack)
    migrate(ch, name)
    settings = stack.model_copy(update={
        "home": tmp_path_factory.mktemp("qn"), "lib": stack.lib_dir, "scans_topic": topic, "dlq_topic": dlq,
        "clickhouse_database": name, "loader_group": f"loader-{name}", "loader_batch_seconds": 0.3,
        "loader_batch_rows": 5_000, "loader_metrics_port": free_port(), "airflow_port": free_port(), "api_port": free_port()})
    key = add_key(settings.api_keys_path, "opsview-test", {SCOPE_WRITE_SCANS}, 100_000)
    sup, started = Supervisor(settings), []
    # the API and Airflow's tasks run as their own principals: their ACLs on this test's topics and group
    with devkafka.granted(settings, ("api", "airflow")):
        try:
            for svc in AIRFLOW:
                sup.start(svc)
                started.append(svc)
            airflow.create_topics(settings)  # as `make run` does: the kafka_topics DAG declares them, the audit is unpaused
            sup.start(API)
            started.append(API)
            device = f"opsview-{uuid.uuid4().hex[:6]}"
            rng = random.Random(16)
            lat, lon = ALEXANDERPLATZ
            at_cell = [scan_payload(device, rng=rng, lat=lat, lon=lon, rsrp=r) for r in RSRP]
            spread = [scan_payload(f"phone-{i % 40}", rng=rng) for i in range(SPREAD)]
            loader = LoaderThread(settings)
            try:
                _post(settings, key, at_cell)
                _post(settings, key, spread)
                producer = qkafka.producer(settings)
                for i in range(POISON):
                    producer.produce(topic, key=b"poison", value=b'{"scan_id": "not a scan" %d' % i)
                assert producer.flush(30) == 0
                total = len(at_cell) + SPREAD
                wait_for(lambda: count(ch, settings) == total, 120, "the posted scans in ClickHouse")
                wait_for(lambda: committed(settings, settings.loader_group) == end_offsets(settings), 60, "the loader's commit")
            finally:
                loader.stop()
            jwt = airflow.token(settings)
            offsets = {str(p): [0, end] for p, end in end_offsets(settings).items() if end}
            state, run = airflow.run_dag(settings, "replay_to_clickhouse", {"topic": topic, "offsets": offsets}, timeout_s=360, jwt=jwt)
            assert state == "success"
            _post(settings, key, [scan_payload(f"late-{i % 30}", rng=rng) for i in range(BACKLOG)])  # the loader is stopped: lag
            wait_for(lambda: sum(end_offsets(settings).values()) == total + POISON + BACKLOG, 30, "the backlog on Kafka")
            airflow.run_dag(settings, "retention_audit", {}, timeout_s=360, jwt=jwt)  # passes or fails: the page says which
            wait_for(lambda: _active_runs(settings, "retention_audit", jwt) == 0, 300, "no audit running")
            yield Scenario(settings, f"http://{settings.airflow_host}:{settings.airflow_port}", device, len(at_cell), run["dag_run_id"])
        finally:
            for svc in reversed(started):
                sup.stop(svc)
            ch.command(f"DROP DATABASE IF EXISTS {name} SYNC")
            ch.close()
            admin.delete_topics([topic, dlq])


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            chromium.close()


def _login(page, s: Scenario) -> None:
    """On Airflow's login page: log in as the admin."""
    page.locator("input[name=username]").fill(airflow.ADMIN)
    page.locator("input[name=password]").fill(airflow.admin_password(s.settings))
    page.locator("button[type=submit]").click()


def _open(browser, s: Scenario, path: str):
    """A logged-in page at ``path`` (logged out first: the login page, then back to ``path``)."""
    page = browser.new_context(viewport=VIEWPORT, timezone_id="Europe/Berlin").new_page()
    page.goto(s.base + path)
    _login(page, s)
    page.wait_for_url(re.compile(re.escape(s.base + path.split("?")[0]) + r"(\?.*)?$"), timeout=30_000)
    return page


def test_logged_out_the_pages_send_a_browser_to_airflows_login_and_back(scenario, browser):
    s = scenario
    for path in ("/quacknet/", "/quacknet/map"):
        page = browser.new_context(viewport=VIEWPORT).new_page()
        response = page.goto(s.base + path)
        assert "/auth/login" in page.url and response.ok  # Airflow's login page, not {"detail": "Not authenticated"}
        assert "Not authenticated" not in page.content()
        page.locator("input[name=username]").wait_for(timeout=30_000)
        _login(page, s)
        page.wait_for_url(s.base + path, timeout=30_000)
        assert page.locator("header.top .brand").inner_text() == "QuackNet"
    for api in ("/quacknet/api/overview", "/quacknet/api/coverage/newest"):  # API clients get a status, not a page
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(s.base + api, timeout=30)
        assert refused.value.code == 401


def test_the_operations_page_shows_what_kafka_and_clickhouse_hold(scenario, browser):
    from playwright.sync_api import expect

    s = scenario
    settings, db = s.settings, s.settings.clickhouse_database
    page = _open(browser, s, "/quacknet/?hours=1")
    expect(page.locator("body[data-ready=true]")).to_have_count(1, timeout=30_000)

    # consumer lag per partition: the loader group's committed offsets against the log's end, from Kafka
    ends, done = end_offsets(settings), committed(settings, settings.loader_group)
    shown = {int(row.get_attribute("data-partition")): int(row.locator("td[data-field=lag]").get_attribute("data-value"))
             for row in page.locator("#lag-now tbody tr").all()}
    assert shown == {p: ends[p] - done[p] for p in ends} and sum(shown.values()) == BACKLOG
    assert page.locator("[data-tile=lag] .value").get_attribute("data-value") == str(BACKLOG)

    # the DLQ: the poison dead-lettered by the loader, and again by the replay
    dlq = read_topic(settings, settings.dlq_topic)
    assert len(dlq) == 2 * POISON
    assert page.locator("#dlq-size").get_attribute("data-value") == str(len(dlq))
    reason = dict(dlq[0].headers())["quacknet.error.reason"].decode()
    expect(page.locator("#dlq-reasons")).to_contain_text(reason)
    expect(page.locator("#dlq-reasons")).to_contain_text(str(len(dlq)))

    # the replay: its counts are the copy task's return value, its ranges what the ledger holds
    jwt = airflow.token(settings)
    xcom = airflow.api_call(settings, "GET", f"/api/v2/dags/replay_to_clickhouse/dagRuns/{urllib.parse.quote(s.run_id, safe='')}"
                            "/taskInstances/copy/xcomEntries/return_value", token=jwt)["value"]
    xcom = xcom if isinstance(xcom, dict) else json.loads(xcom)
    total = s.posted_at_cell + SPREAD
    assert xcom == {"read": total + POISON, "inserted": 0, "already_present": total, "duplicates_in_batch": 0,
                    "dead_lettered": POISON}
    row = page.locator(f"#replays tr[data-run='{s.run_id}']")
    for key, value in xcom.items():
        assert row.locator(f"td[data-field={key}]").get_attribute("data-value") == str(value), key
    ch = warehouse.client(settings)
    try:
        ledger = ch.query(f"SELECT partition, min(first_offset), max(last_offset) FROM {db}.load_ledger WHERE source = "
                          "{s:String} GROUP BY partition ORDER BY partition", parameters={"s": f"replay:{s.run_id}"}).result_rows
        latest = ch.query(f"SELECT countIf(NOT ok), count(), max(run_at) FROM {db}.audit_findings "
                          f"WHERE run_at = (SELECT max(run_at) FROM {db}.audit_findings)").result_rows[0]
        topic_level = ch.command(f"SELECT count() FROM {db}.audit_findings WHERE partition = -1")
    finally:
        ch.close()
    ranges = [li.inner_text() for li in row.locator("ul.ranges li").all()]
    assert [int(li.get_attribute("data-partition")) for li in row.locator("ul.ranges li").all()] == [p for p, _, _ in ledger]
    assert [r.split(" (")[0] for r in ranges] == [f"[{p}] {first:,}…{last:,}" for p, first, last in ledger]
    assert row.locator("a").get_attribute("href") == f"/dags/replay_to_clickhouse/runs/{urllib.parse.quote(s.run_id, safe='')}"
    started, finished = row.locator("time").all()[:2]
    assert started.inner_text().endswith(" UTC") and started.inner_text() != finished.inner_text()

    # the audit's verdict is the latest run's in audit_findings; topic-level findings name the topic
    failed, checks, run_at = latest
    verdict = page.locator("#verdict").inner_text()
    assert verdict == (f"FAIL: {failed} violation(s) of {checks} checks" if failed else f"PASS: all {checks} checks passed") + \
        f" in the audit of {run_at:%Y-%m-%d %H:%M:%S} UTC"
    assert topic_level > 0 and "-1" not in [c.inner_text() for c in page.locator("#audit tbody td:nth-child(3)").all()]

    # charts, drawn: lag per partition, ingest, freshness
    assert page.locator("#chart-lag").get_attribute("data-drawn") == str(settings.scans_partitions)
    assert page.locator("#chart-ingest canvas").count() == 1 and page.locator("#chart-freshness canvas").count() == 1
    assert "UTC" in page.locator("header.top .stamp").inner_text()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "operations.png"), full_page=True)

    # the replay's link opens its run in Airflow (the page lives in an iframe: the link leaves it)
    row.locator("a").click()
    page.wait_for_url(re.compile(r".*/dags/replay_to_clickhouse/runs/.+"), timeout=30_000)
    # and the Browse menu's entry shows the page inside Airflow's UI
    page.goto(f"{s.base}/plugin/quacknet")
    expect(page.frame_locator("iframe").locator("#verdict")).to_have_text(verdict, timeout=30_000)


def test_the_map_shows_a_hexagon_for_the_scans_posted_in_this_test(scenario, browser):
    from playwright.sync_api import expect

    s = scenario
    db = s.settings.clickhouse_database
    ch = warehouse.client(s.settings)
    try:
        cell, scans, median = ch.query(
            f"SELECT h3ToString(h3_r8), count(), quantileExact(0.5)(rsrp) FROM {db}.scans WHERE device_id = {{d:String}} "
            "GROUP BY h3_r8", parameters={"d": s.device}).result_rows[0]
    finally:
        ch.close()
    assert scans == s.posted_at_cell
    lat, lon = ALEXANDERPLATZ
    page = _open(browser, s, f"/quacknet/map?lat={lat}&lon={lon}&zoom=14&hours=24&metric=rsrp")
    expect(page.locator("body[data-state=loaded]")).to_have_count(1, timeout=60_000)
    assert cell in page.evaluate("Object.keys(window.quacknet.features())")

    # a click on the posted location opens the cell's figures
    x, y = page.evaluate("""([lat, lon]) => {
        const p = window.quacknet.map.latLngToContainerPoint([lat, lon]);
        const box = document.getElementById('map').getBoundingClientRect();
        return [box.left + p.x, box.top + p.y]; }""", [lat, lon])
    page.mouse.click(x, y)
    info = page.locator(".leaflet-popup-content .cellinfo")
    expect(info).to_contain_text(f"H3 cell {cell}", timeout=10_000)
    expect(info).to_contain_text(f"{scans} scans")
    expect(info.locator("tr[data-technology=LTE]")).to_contain_text(f"{median:.0f} dBm")
    expect(page.locator("#legend")).to_contain_text("Median RSRP")
    page.wait_for_function("getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'")  # faded in
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "coverage-map.png"))

    # filters: by download speed the legend changes; a technology never scanned here leaves no cell
    page.locator("#metric").select_option("download")
    expect(page.locator("#legend")).to_contain_text("Median download")
    page.locator("#technology").select_option("NR-SA")
    expect(page.locator("body[data-state=loaded]")).to_have_count(1, timeout=30_000)
    expect(page.locator("body")).to_have_attribute("data-cells", re.compile(r"^\d+$"))
    wait_for(lambda: cell not in page.evaluate("Object.keys(window.quacknet.features())"), 30, "the LTE-only cell to go")
