"""The operations page and the map as rendered from given figures: verdicts, human units, times with
their zone, per-partition replay ranges, escaping, a section's failure kept to that section, the
login redirect, the static files and the coverage endpoint's refusals (no service needed)."""

import datetime as dt
import json
import re

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from quacknet.airflow import opsdata, opsview
from quacknet.airflow.opsdata import AirflowRun, DeadLetter, DeadLetters, Freshness, PartitionLag, Replay, Section, StoredRange
from quacknet.settings import Settings

NOW = dt.datetime(2026, 11, 30, 21, 0, tzinfo=dt.UTC)
RUN = dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.UTC)


def _finding(ok: bool, message: str, check: str = "retention", topic: str = "scans", partition: int = -1,
             subject: str = "retention.ms", value: float = 604_800_000, limit: float = 604_800_000) -> dict:
    return {"run_at": RUN, "check": check, "subject": subject, "topic": topic, "partition": partition, "ok": ok,
            "value": value, "limit": limit, "message": message}


def _overview(**sections) -> opsdata.Overview:
    win = opsdata.window(3, NOW)
    boundaries = win.boundaries_ms()
    defaults = {
        "lag": Section([PartitionLag(1, 90, 0, 100), PartitionLag(0, None, 5, 12)]),
        "history": Section({"boundaries_ms": boundaries, "lag": {0: [0] * len(boundaries), 1: [10] * len(boundaries)},
                            "produced": [(boundaries[0] // 1000, 2.5)]}),
        "freshness": Section(Freshness(1234, 0.85, 1.2, 1.49, NOW - dt.timedelta(seconds=3), NOW - dt.timedelta(seconds=2),
                                       10_000_000, [(boundaries[0] // 1000, 300, 0.8, 1.4)])),
        "audit": Section([]),
        "replays": Section([]),
        "dead_letters": Section(DeadLetters("scans.dlq", [(0, 0, 2), (1, 3, 3)], [], [], 0)),
    }
    defaults.update(sections)
    return opsdata.Overview(win, "scans", "scans.dlq", "loader-group", **defaults)


def _page(**sections) -> str:
    return opsview.render_page(_overview(**sections), "/quacknet", opsview.default_run_url("/"))


def test_the_audit_leads_with_its_verdict_topic_level_rows_name_the_topic_and_numbers_read_in_units():
    page = _page(audit=Section([
        _finding(False, "scans: retention.ms is 1, policy says 604800000", value=1),
        _finding(True, "broker 1 /data: Kafka logs use 595 KiB", check="disk_use", topic="", subject="broker 1 /data",
                 value=609_280, limit=8 * 2**30),
        _finding(True, "scans[3]: offsets 0..9 all loaded", check="completeness", partition=3, subject="loader", value=0, limit=0),
    ]))
    assert "FAIL: 1 violation(s) of 3 checks in the audit of 2026-11-30 20:00:00 UTC" in page
    rows = re.findall(r"<tr class='(?:ok|fail)'>(.*?)</tr>", page)
    assert "<td>retention</td><td>scans</td>" in rows[0]  # topic-level: the topic, no partition -1
    assert "<td>disk_use</td><td>broker 1 /data</td>" in rows[1] and "595 KiB" in rows[1] and "8.00 GiB" in rows[1]
    assert "<td>completeness</td><td>scans[3]</td>" in rows[2]
    assert not any(">-1<" in r for r in rows)
    assert "1 ms" in rows[0] and "7 d" in rows[0]  # retention.ms as durations
    assert "data-tile='audit'" in page and "data-value='FAIL'" in page


def test_a_clean_audit_passes_and_an_empty_warehouse_says_so():
    assert "PASS: all 1 checks passed in the audit of 2026-11-30 20:00:00 UTC" in _page(audit=Section([_finding(True, "ok")]))
    page = _page()
    assert "no audit has run yet" in page and "no findings stored yet" in page and "no replay has run yet" in page


def test_lag_now_per_partition_sorted_with_the_group_nothing_committed_counts_from_the_earliest():
    page = _page()
    rows = re.findall(r"<tr data-partition='(\d)'>(.*?)</tr>", page.split("id='lag-now'")[1].split("</table>")[0])
    assert [p for p, _ in rows] == ["0", "1"]
    assert "data-field='lag' data-value='7'" in rows[0][1] and "nothing" in rows[0][1]  # 12 - earliest 5
    assert "data-field='lag' data-value='10'" in rows[1][1] and "data-field='committed' data-value='90'" in rows[1][1]
    assert re.search(r"data-tile='lag'.*?data-value='17'", page)


def test_freshness_newest_scan_and_times_carry_their_zone_and_numbers_their_units():
    page = _page()
    assert "850 ms" in page and "p99 1.49 s" in page and "1,234 scans in the last 15 min" in page
    assert "3.00 s old" in page and "10 M rows stored" in page
    assert "as of <time datetime='2026-11-30T21:00:00.000Z'>2026-11-30 21:00:00 UTC</time>" in page


def test_replays_link_their_runs_sort_partitions_and_show_each_partitions_range_and_the_counts_that_add_up():
    counts = {"read": 1500, "inserted": 1000, "already_present": 400, "duplicates_in_batch": 60, "dead_lettered": 40}
    replay = Replay("manual__2026-11-30T20:00:00+00:00", "replay:manual__2026-11-30T20:00:00+00:00", "success",
                    RUN, RUN + dt.timedelta(seconds=95), {"topic": "scans", "start_time": "2026-11-30T19:00:00Z"}, counts, None,
                    [StoredRange("scans", 0, 0, 999, 1000), StoredRange("scans", 2, 10, 509, 500)])
    page = _page(replays=Section([replay]))
    row = page.split("id='replays'")[1]
    assert "href='/dags/replay_to_clickhouse/runs/manual__2026-11-30T20%3A00%3A00%2B00%3A00' target='_top'" in row
    assert row.index("data-partition='0'") < row.index("data-partition='2'")
    assert "<b>[0]</b> 0…999" in row and "<b>[2]</b> 10…509" in row and "(500)" in row
    assert "2026-11-30 20:00:00 UTC" in row and "2026-11-30 20:01:35 UTC" in row and "1 min 35 s" in row
    for key, value in counts.items():
        assert f"data-field='{key}' data-value='{value}'" in row
    assert "2026-11-30T19:00:00Z → now" in row


def test_a_replay_outside_airflow_and_a_planned_one_without_rows_still_read_right():
    unknown = Replay("cli-1", "replay:cli-1", stored=[StoredRange("scans", 1, 5, 9, 5)], first_loaded=RUN, last_loaded=RUN)
    planned = Replay("manual__x", "replay:manual__x", "running", RUN, None, {"topic": "scans"}, None,
                     [{"partition": 3, "start": 7, "end": 9, "earliest_available": 0},
                      {"partition": 1, "start": 0, "end": 4, "earliest_available": 0}])
    dry = Replay("manual__dry", "replay:manual__dry", "success", RUN, RUN, {"topic": "scans"}, {"dry_run": True, "planned": 42})
    page = _page(replays=Section([planned, unknown, dry]))
    assert "cli-1 <span class='muted'>(not in Airflow)</span>" in page
    unknown_row = page.split("data-run='cli-1'")[1].split("</tr>")[0]
    assert "<td>scans<br>" in unknown_row and "<li data-partition='1'><b>[1]</b> 5…9" in unknown_row  # topic once, not per range
    planned_row = page.split("data-run='manual__x'")[1].split("</tr>")[0]
    assert planned_row.index("[1]") < planned_row.index("[3]") and "planned" in planned_row
    assert "dry run: 42 planned" in page


def test_dead_letters_show_size_reasons_and_the_newest_with_their_origin():
    letters = [DeadLetter(0, 1, RUN, "invalid_json", "Expecting value: line 1", "scans", "4", "17")]
    page = _page(dead_letters=Section(DeadLetters("scans.dlq", [(0, 0, 2), (1, 3, 3)], letters, [("invalid_json", 2)], 2)))
    assert "id='dlq-size' data-value='2'" in page and "scans[4]@17" in page and "invalid_json" in page
    assert "Reasons among the newest 2" in page


def test_everything_stored_is_escaped_in_html_and_in_the_charts_json():
    evil = "<script>alert(1)</script>"
    page = _page(
        audit=Section([_finding(False, evil, topic="t<b>")]),
        replays=Section([Replay(evil, f"replay:{evil}", "failed", RUN, RUN, {"topic": evil}, None, None,
                                [StoredRange(evil, 0, 0, 1, 2)])]),
        dead_letters=Section(DeadLetters("d", [(0, 0, 1)], [DeadLetter(0, 0, RUN, evil, evil, evil, "0", "0")], [(evil, 1)], 1)),
    )
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "t&lt;b&gt;" in page
    assert opsview.script_json({"x": "</script><b>"}) == '{"x":"\\u003c/script\\u003e\\u003cb\\u003e"}'


def test_a_failing_source_is_reported_in_its_section_and_the_rest_still_renders():
    page = _page(lag=Section(None, "Unavailable: Kafka did not answer <in time>"),
                 history=Section(None, "Unavailable: Kafka did not answer"))
    assert "Could not read the loader group&#x27;s offsets on scans: Unavailable: Kafka did not answer &lt;in time&gt;" in page
    assert "850 ms" in page and "id='dlq-size'" in page  # ClickHouse and the DLQ sections are there


def test_chart_data_in_utc_seconds_per_series():
    data = opsview.chart_data(_overview())
    assert data["lag"]["series"]["1"][0] == 10 and data["lag"]["x"][0] % data["step_s"] == 0
    assert data["freshness"]["p99"] == [1.4]
    assert data["ingest"]["kafka"][0] == 2.5 and data["ingest"]["stored"][0] == pytest.approx(300 / 120)


def test_the_map_page_offers_both_metrics_every_technology_and_the_bounds():
    page = opsview.render_map("/quacknet", NOW)
    assert "<option value='rsrp'>median RSRP</option>" in page and "median download speed" in page
    assert all(f"<option value='{t}'>" in page for t in ("LTE", "NR-SA", "WIFI", "GSM"))
    config = json.loads(page.split("id='map-config'>")[1].split("</script>")[0])
    assert config["api"] == "/quacknet/api/coverage" and config["max_area_deg2"] == 4.0
    assert "/quacknet/static/vendor/leaflet-1.9.4/leaflet.js" in page and "countries-50m.json" in config["countries"]


# -- the app -------------------------------------------------------------------------------------

def _not_logged_in():
    raise HTTPException(401, "Not authenticated")


def _unsettable():
    raise AssertionError("this request must not reach the warehouse")


def _app(dependencies=(), login_url=lambda nxt: f"/api/v2/auth/login?next={nxt}") -> TestClient:
    return TestClient(opsview.create_app(_unsettable, dependencies=dependencies, login_url=login_url), follow_redirects=False)


@pytest.mark.parametrize("path", ["/", "/map", "/?hours=6"])
def test_a_logged_out_browser_is_sent_to_the_login_page_and_back(path):
    response = _app([_not_logged_in]).get(path)
    assert response.status_code == 303
    assert response.headers["location"] == f"/api/v2/auth/login?next=http://testserver{path}"


def test_a_logged_out_api_client_gets_401_and_a_forbidden_user_403_not_a_redirect():
    assert _app([_not_logged_in]).get("/api/overview").status_code == 401

    def forbidden():
        raise HTTPException(403, "Forbidden")

    response = _app([forbidden]).get("/")
    assert response.status_code == 403 and response.json() == {"detail": "Forbidden"}


def test_an_invalid_token_in_a_browser_goes_to_the_login_page_too():
    def invalid():
        raise HTTPException(403, "Invalid JWT token")

    assert _app([invalid]).get("/").status_code == 303


def test_static_files_are_the_vendored_and_own_assets_only():
    client = _app()
    js = client.get("/static/vendor/uplot-1.6.32/uPlot.iife.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript") and b"uPlot" in js.content
    assert client.get("/static/ops.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/vendor/world-atlas-2.0.2/countries-50m.json").json()["type"] == "Topology"
    assert client.get("/static/ops.js", headers={"If-None-Match": js.headers["etag"]}).status_code == 200
    etag = client.get("/static/ops.js").headers["etag"]
    assert client.get("/static/ops.js", headers={"If-None-Match": etag}).status_code == 304
    for missing in ("/static/../opsview.py", "/static/vendor/SHA256SUMS", "/static/%2e%2e/opsdata.py", "/static/nope.js"):
        assert client.get(missing).status_code == 404, missing


@pytest.mark.parametrize(("query", "message"), [
    ("since=2026-11-30T00:00:00Z", "bbox is required"),
    ("bbox=0,0,10,10&since=2026-11-30T00:00:00Z", "square degrees"),
    ("bbox=13.3,52.4,13.5,52.6", "since is required"),
    ("bbox=13.3,52.4,13.5,52.6&since=yesterday", "since"),
    ("bbox=13.3,52.4,13.5,52.6&since=2026-11-30T00:00:00Z&technology=6G", "technology must be one of"),
])
def test_the_maps_coverage_endpoint_refuses_unbounded_or_invalid_requests_with_400(query, message):
    response = _app().get(f"/api/coverage?{query}")
    assert response.status_code == 400 and message in response.json()["detail"]


def test_an_unreachable_warehouse_is_a_503_with_its_reason(monkeypatch):
    from quacknet.errors import Unavailable

    def down(settings):
        raise Unavailable("ClickHouse is unavailable while connecting to http://ch:8123: refused")

    monkeypatch.setattr(opsview.warehouse, "client", down)
    response = TestClient(opsview.create_app(lambda: Settings())).get("/api/coverage/newest")
    assert response.status_code == 503 and "refused" in response.json()["detail"]


def test_replay_runs_from_airflow_reach_the_json_with_their_counts(monkeypatch):
    run = AirflowRun("manual__1", "success", RUN, RUN + dt.timedelta(seconds=5), {"topic": "scans"},
                     {"read": 2, "inserted": 2, "already_present": 0, "duplicates_in_batch": 0, "dead_lettered": 0}, None)

    class Client:
        def query(self, sql, parameters):
            assert parameters["wanted"] == ["replay:manual__1"]
            return type("R", (), {"result_rows": [("replay:manual__1", "scans", 0, 0, 1, 2, RUN, RUN)]})()

        def close(self):
            pass

    monkeypatch.setattr(opsview.warehouse, "client", lambda settings: Client())
    app = TestClient(opsview.create_app(lambda: Settings(), runs=lambda: [run]))
    [replay] = app.get("/api/replays").json()
    assert replay["counts"]["read"] == 2 and replay["stored"] == [{"topic": "scans", "partition": 0, "first": 0, "last": 1,
                                                                   "messages": 2}]
    assert replay["started"] == "2026-11-30T20:00:00.000Z" and replay["finished"] == "2026-11-30T20:00:05.000Z"
    assert replay["topic"] == "scans" and replay["messages"] == 2 and replay["source"] == "replay:manual__1"
