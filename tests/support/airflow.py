"""Airflow for in-process tests: a throwaway AIRFLOW_HOME with SQLite, set (by the root conftest)
before anything imports airflow."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from devtools.settings import PROJECT_ROOT
from quacknet import kafka

HOME = Path(tempfile.mkdtemp(prefix="qn-airflow-"))


def configure_environment() -> None:
    os.environ.update({
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
    })


def load_dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def connection_env(settings) -> dict[str, str]:
    """AIRFLOW_CONN_KAFKA_DEFAULT and AIRFLOW_CONN_CLICKHOUSE_DEFAULT for a stack's settings (as the
    local stack's Airflow gets them), with the settings' Kafka login (``as_kafka_service("airflow")``
    for Airflow's own principal)."""
    return {
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps({"conn_type": "kafka", "extra": kafka.connection_extra(settings)}),
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": json.dumps({
            "conn_type": "clickhouse", "host": settings.clickhouse_host, "port": settings.clickhouse_port,
            "login": settings.clickhouse_user, "password": settings.clickhouse_password.get_secret_value(),
            "schema": settings.clickhouse_database}),
    }
