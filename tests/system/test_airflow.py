"""System tests: the real Airflow components (api-server, scheduler, dag-processor, triggerer) on
loopback run the replay DAG, triggered through the REST API and through the UI's trigger form in
headless Chromium; ClickHouse then holds the range once."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from devtools import airflow
from devtools.services import AIRFLOW
from devtools.supervisor import Supervisor, free_port
from tests.support.kafka import end_offsets, produce
from tests.support.loader import count

CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make test` installs it); Playwright cannot download browsers here


@pytest.fixture
def airflow_stack(lsettings, tmp_path):
    settings = lsettings.model_copy(update={"home": tmp_path / "qn", "lib": lsettings.lib_dir, "airflow_port": free_port(),
                                            "airflow_worker_log_port": free_port(), "airflow_triggerer_log_port": free_port()})
    sup = Supervisor(settings)
    started = []
    try:
        for svc in AIRFLOW:
            sup.start(svc)
            started.append(svc)
        yield settings
    finally:
        for svc in reversed(started):
            sup.stop(svc)


def _replay_form(page, base: str, settings):
    """Log in, open the replay DAG's trigger form (once the dag-processor has parsed it), fill the topic."""
    page.goto(f"{base}/dags/replay_to_clickhouse")  # not logged in: the login form first
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(airflow.admin_password(settings))
    page.locator("button[type=submit]").click()
    trigger = page.get_by_role("button", name="Trigger Dag")
    deadline = time.monotonic() + 120
    while not trigger.is_visible() and time.monotonic() < deadline:
        page.wait_for_timeout(2000)
        page.reload()
    trigger.click()
    form = page.get_by_role("dialog")
    form.get_by_role("button", name="Source").click()  # the form's sections open on a click
    form.locator("input[name=element_topic]").fill(settings.scans_topic)
    return form


_call = airflow.api_call


def test_replay_triggered_through_the_rest_api_runs_on_the_real_scheduler(airflow_stack, ch):
    settings = airflow_stack
    ids = produce(settings, 700)
    token = airflow.token(settings)
    conf = {"topic": settings.scans_topic, "start_time": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat()}
    state, run = airflow.run_dag(settings, "replay_to_clickhouse", conf, timeout_s=360, jwt=token)
    assert state == "success"
    assert count(ch, settings) == len(ids) == 700

    # the QuackNet plugin on the same API server: behind Airflow's login, showing this replay
    with pytest.raises(urllib.error.HTTPError) as refused:
        _call(settings, "GET", "/quacknet/api/replays")
    assert refused.value.code in (401, 403)
    replays = _call(settings, "GET", "/quacknet/api/replays", token=token)
    [ours] = [r for r in replays if r["source"] == f"replay:{run['dag_run_id']}"]
    assert ours["messages"] == 700 and ours["topic"] == settings.scans_topic
    plugins = _call(settings, "GET", "/api/v2/plugins", token=token)["plugins"]
    assert any(p["name"] == "quacknet" for p in plugins)


def test_replay_triggered_from_the_ui_form_in_a_real_browser(airflow_stack, ch):
    import re

    from playwright.sync_api import expect, sync_playwright

    settings = airflow_stack
    produce(settings, 300)
    ends = end_offsets(settings)
    offsets = {str(p): [0, end] for p, end in ends.items() if end}
    base = f"http://{settings.airflow_host}:{settings.airflow_port}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            form = _replay_form(page, base, settings)
            form.get_by_role("button", name="Or explicit offsets").click()
            editor = (form.locator("[data-part=root][role=group]")
                      .filter(has=page.locator("label", has_text=re.compile(r"^Explicit offsets"))).locator(".monaco-editor"))
            editor.click()
            page.keyboard.press("Control+A")
            page.keyboard.insert_text(json.dumps(offsets))
            page.keyboard.press("Shift+Control+End")  # what the editor auto-closed after the cursor
            page.keyboard.press("Delete")
            form.get_by_test_id("trigger-dag-submit").click()
            page.wait_for_url(re.compile(r".*/dags/replay_to_clickhouse/runs/.+"), timeout=30_000)
            run_id = urllib.parse.unquote(page.url.rsplit("/runs/", 1)[1])
            # the run's own state from the REST API: a "Success" on the page may be a finished task's
            # (the plan) while the copy still runs
            run = airflow.wait_for_run(settings, "replay_to_clickhouse", run_id, time.monotonic() + 180, airflow.token(settings))
            assert run["state"] == "success"
            page.reload()
            expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=30_000)
        finally:
            browser.close()
    assert count(ch, settings) == 300
    plan = ch.query(f"SELECT sum(last_offset - first_offset + 1) FROM {settings.clickhouse_database}.load_ledger "
                    "WHERE source = {s:String}", parameters={"s": f"replay:{run_id}"}).result_rows
    assert plan == [(300,)]


SCREENSHOTS = Path(os.environ.get("QUACKNET_SCREENSHOTS", "/tmp/quacknet-screenshots"))




def test_a_replay_window_typed_in_utc_runs_as_typed_in_a_berlin_browser_and_its_log_reads_top_down(airflow_stack, ch):
    """The UI's timezone is the browser's (Europe/Berlin here): a time typed into the form is sent
    as typed, and the copy's summary is a plain line in the task log's default view."""
    import re

    from playwright.sync_api import expect, sync_playwright

    settings = airflow_stack
    produce(settings, 240)
    typed = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = f"http://{settings.airflow_host}:{settings.airflow_port}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            context = browser.new_context(timezone_id="Europe/Berlin", viewport={"width": 1440, "height": 900})
            page = context.new_page()
            assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "Europe/Berlin"
            form = _replay_form(page, base, settings)
            form.get_by_role("button", name="Time range (UTC)").click()
            form.locator("input[name=element_start_time]").fill(typed)
            page.screenshot(path=str(SCREENSHOTS / "replay-form-berlin.png"), full_page=True)
            form.get_by_test_id("trigger-dag-submit").click()
            page.wait_for_url(re.compile(r".*/dags/replay_to_clickhouse/runs/.+"), timeout=30_000)
            run_id = urllib.parse.unquote(page.url.rsplit("/runs/", 1)[1].split("/")[0])
            jwt = airflow.token(settings)
            run = airflow.wait_for_run(settings, "replay_to_clickhouse", run_id, time.monotonic() + 180, jwt)
            assert run["state"] == "success"
            assert run["conf"]["start_time"] == typed  # not shifted by the browser's timezone

            page.goto(f"{base}/dags/replay_to_clickhouse/runs/{urllib.parse.quote(run_id, safe='')}/tasks/copy")
            summary = page.get_by_text("read 240 = inserted 240 + already present 0 + duplicates within batches 0 "
                                       "+ dead-lettered 0")
            expect(summary.first).to_be_visible(timeout=30_000)  # in the default view: no group to expand
            page.screenshot(path=str(SCREENSHOTS / "replay-copy-log.png"), full_page=True)
            page.goto(f"{base}/dags/replay_to_clickhouse/runs/{urllib.parse.quote(run_id, safe='')}/tasks/plan")
            expect(page.get_by_text(f"replay of {settings.scans_topic}: broker time").first).to_be_visible(timeout=30_000)
        finally:
            browser.close()
    assert count(ch, settings) == 240
