"""A local stack of a test's own: its own state dir and a free port for every listener (Kafka,
its controller, the gateway, the API, the loader's metrics, Airflow's api-server and log servers),
so it never collides with `make run` or another test's stack."""

from __future__ import annotations

from pathlib import Path

from devtools.settings import DevSettings
from devtools.supervisor import free_port


def own_ports(base: DevSettings, home: Path, **overrides) -> DevSettings:
    kafka_port = free_port()
    return base.model_copy(update={
        "home": home, "lib": base.lib_dir, "kafka_port": kafka_port, "kafka_controller_port": free_port(),
        "kafka_bootstrap_servers": f"127.0.0.1:{kafka_port}", "clickhouse_url": f"http://127.0.0.1:{free_port()}",
        "api_port": free_port(), "loader_metrics_port": free_port(), "airflow_port": free_port(),
        "airflow_worker_log_port": free_port(), "airflow_triggerer_log_port": free_port(), **overrides,
    })
