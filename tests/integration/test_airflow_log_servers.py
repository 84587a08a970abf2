"""Airflow's own log-server app, served by the local stack on loopback only, at the ports from the
settings (so a test's own Airflow and `make run` do not collide)."""

from __future__ import annotations

import urllib.error
import urllib.request

import psutil
import pytest

from devtools.services import AIRFLOW_LOGS
from devtools.settings import DevSettings
from devtools.supervisor import Supervisor, free_port


@pytest.fixture
def log_servers(tmp_path):
    settings = DevSettings(home=tmp_path / "qn", clickhouse_password="pw", airflow_worker_log_port=free_port(),
                           airflow_triggerer_log_port=free_port())
    sup = Supervisor(settings)
    sup.start(AIRFLOW_LOGS)
    yield settings, sup.process(AIRFLOW_LOGS)
    sup.stop(AIRFLOW_LOGS)


def test_both_log_servers_listen_on_loopback_only_and_want_airflows_token(log_servers):
    settings, proc = log_servers
    ports = {settings.airflow_worker_log_port, settings.airflow_triggerer_log_port}
    listening = {(c.laddr.ip, c.laddr.port) for p in (proc, *proc.children(recursive=True))
                 for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", port) for port in ports}
    for port in ports:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/log/dag_id=x/run_id=y/task_id=z/attempt=1.log", timeout=10)
        assert refused.value.code == 403  # Airflow's log server: a JWT signed by the api-server is required
