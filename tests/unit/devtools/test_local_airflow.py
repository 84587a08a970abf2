"""The local Airflow's listeners: the scheduler and the triggerer do not start their own log servers
(Airflow 3.3 binds those to every interface); the api-server is told where the loopback ones are."""

from __future__ import annotations

from airflow._shared.module_loading import import_string

from devtools import airflow
from devtools.services import AIRFLOW, AIRFLOW_LOGS
from devtools.settings import DevSettings


def test_scheduler_and_triggerer_skip_their_all_interfaces_log_servers(tmp_path):
    settings = DevSettings(home=tmp_path, clickhouse_password="pw")
    for component in ("scheduler", "triggerer"):
        assert airflow.command(component)(settings)[-1] == "--skip-serve-logs"
    api = airflow.command("api-server")(settings)
    assert api[api.index("--host") + 1] == "127.0.0.1"


def test_the_log_server_ports_are_settings_and_reach_airflows_config(tmp_path):
    settings = DevSettings(home=tmp_path, clickhouse_password="pw", airflow_worker_log_port=28793, airflow_triggerer_log_port=28794)
    env = airflow.env(settings)
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "28793"
    assert env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == "28794"
    assert import_string(env["AIRFLOW__CORE__HOSTNAME_CALLABLE"])() == "127.0.0.1"
    assert AIRFLOW_LOGS in AIRFLOW and AIRFLOW_LOGS.ports(settings) == [28793, 28794]
    assert AIRFLOW.index(AIRFLOW_LOGS) < [svc.name for svc in AIRFLOW].index("airflow-scheduler")
