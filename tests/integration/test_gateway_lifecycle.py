"""The gateway as a service: data survives restarts and crashes; the CLI's run/status/stop contract.

Uses its own gateway (own state dir, own port) so the shared stack is never disturbed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import clickhouse_connect
import pytest

from devtools.services import CLICKHOUSE
from devtools.settings import PROJECT_ROOT, DevSettings
from devtools.supervisor import Supervisor, free_port


@pytest.fixture
def own_settings(tmp_path) -> DevSettings:
    return DevSettings(home=tmp_path / "qn", clickhouse_url=f"http://127.0.0.1:{free_port()}", log_json=True)


@pytest.fixture
def own_gateway(own_settings):
    sup = Supervisor(own_settings)
    sup.start(CLICKHOUSE)
    yield sup
    sup.stop(CLICKHOUSE, kill=True)


def _client(settings: DevSettings):
    return clickhouse_connect.get_client(dsn=settings.clickhouse_url, username=settings.clickhouse_user,
                                         password=settings.clickhouse_password.get_secret_value())


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "kill-9"])
def test_acknowledged_inserts_survive_a_restart(own_settings, own_gateway, kill):
    client = _client(own_settings)
    client.command("CREATE DATABASE IF NOT EXISTS keep")
    client.command("CREATE TABLE keep.t (k UInt64, s String) ENGINE = MergeTree ORDER BY k")
    for batch in range(5):
        client.insert("keep.t", [(batch * 10_000 + i, "x" * 20) for i in range(10_000)], column_names=["k", "s"])
    client.close()

    assert own_gateway.stop(CLICKHOUSE, kill=kill)
    assert not own_gateway.status(CLICKHOUSE).running
    own_gateway.start(CLICKHOUSE)

    client = _client(own_settings)
    assert client.query("SELECT count(), uniqExact(k) FROM keep.t").result_rows == [(50_000, 50_000)]
    client.insert("keep.t", [(999_999, "after")], column_names=["k", "s"])
    assert client.command("SELECT count() FROM keep.t") == 50_001
    client.close()


def _cli(settings: DevSettings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.to_env()}
    return subprocess.run([sys.executable, "-m", "devtools", *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=180)


def test_cli_run_twice_status_and_stop(own_settings):
    first = _cli(own_settings, "run", "clickhouse")
    try:
        assert first.returncode == 0, first.stderr
        assert "clickhouse: started" in first.stdout
        second = _cli(own_settings, "run", "clickhouse")
        assert second.returncode == 0, second.stderr
        assert "clickhouse: already running" in second.stdout
        pid = (own_settings.run_dir / "clickhouse.pid").read_text().split()[0]
        status = _cli(own_settings, "status", "clickhouse")
        assert status.returncode == 0
        line = next(row for row in status.stdout.splitlines() if row.startswith("clickhouse"))
        assert pid in line and "healthy" in line and str(own_settings.clickhouse_port) in line
        assert (own_settings.log_dir / "clickhouse.log").exists()
    finally:
        stop = _cli(own_settings, "stop", "clickhouse")
    assert stop.returncode == 0 and "clickhouse: stopped" in stop.stdout
    after = _cli(own_settings, "status", "clickhouse")
    assert after.returncode == 3 and "stopped" in after.stdout
