"""Airflow for tests: a throwaway AIRFLOW_HOME with SQLite, set before anything imports airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from quacknet.settings import PROJECT_ROOT

HOME = Path(tempfile.mkdtemp(prefix="qn-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
})


@pytest.fixture(scope="session")
def airflow_db():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=os.environ,
                   capture_output=True, timeout=300)
    return HOME


@pytest.fixture
def connections(monkeypatch, stack):
    """AIRFLOW_CONN_* for the test stack; a test may point clickhouse_default at its own database."""
    def point(settings):
        monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": settings.kafka_bootstrap_servers}}))
        monkeypatch.setenv("AIRFLOW_CONN_CLICKHOUSE_DEFAULT", json.dumps({
            "conn_type": "clickhouse", "host": settings.clickhouse_host, "port": settings.clickhouse_port,
            "login": settings.clickhouse_user, "password": settings.clickhouse_password.get_secret_value(),
            "schema": settings.clickhouse_database}))
    point(stack)
    return point


def load_dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
