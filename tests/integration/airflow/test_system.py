"""System test: the real Airflow components (api-server, scheduler, dag-processor, triggerer) on
loopback run the replay DAG triggered through the REST API; ClickHouse then holds the range once."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request

import pytest

from quacknet.devstack import airflow
from quacknet.devstack.services import AIRFLOW
from quacknet.devstack.supervisor import Supervisor, free_port
from tests.integration.helpers import count, produce


@pytest.fixture
def airflow_stack(lsettings, tmp_path):
    settings = lsettings.model_copy(update={"home": tmp_path / "qn", "lib": lsettings.lib_dir, "airflow_port": free_port()})
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


def _call(settings, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    req = urllib.request.Request(f"http://{settings.airflow_host}:{settings.airflow_port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def test_replay_triggered_through_the_rest_api_runs_on_the_real_scheduler(airflow_stack, ch):
    settings = airflow_stack
    ids = produce(settings, 700)
    token = _call(settings, "POST", "/auth/token", {"username": "admin", "password": airflow.admin_password(settings)})["access_token"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the dag-processor must have parsed the DAG first
        try:
            _call(settings, "GET", "/api/v2/dags/replay_to_clickhouse", token=token)
            break
        except urllib.error.HTTPError:
            time.sleep(1)
    conf = {"topic": settings.scans_topic, "start_time": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).isoformat()}
    run = _call(settings, "POST", "/api/v2/dags/replay_to_clickhouse/dagRuns", {"logical_date": None, "conf": conf}, token)
    state = run["state"]
    while state not in ("success", "failed") and time.monotonic() < deadline + 120:
        time.sleep(2)
        state = _call(settings, "GET", f"/api/v2/dags/replay_to_clickhouse/dagRuns/{run['dag_run_id']}", token=token)["state"]
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
