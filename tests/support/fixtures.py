"""Fixtures for every tier, registered by the root conftest.

The real services start once per session and are stopped only if this session started them;
each test gets its own Kafka topic and ClickHouse database, so tests never share state with each
other or with a developer's running stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from devtools.services import API, CLICKHOUSE, KAFKA
from devtools.settings import DevSettings
from devtools.supervisor import Supervisor, free_port
from quacknet import warehouse
from quacknet.apikeys import SCOPE_WRITE_SCANS, add_key
from quacknet.warehouse.migrations import migrate
from tests.support import airflow as airflow_support
from tests.support.waiting import wait_for


@pytest.fixture(scope="session")
def settings() -> DevSettings:
    """The stack's settings, with the local ClickHouse login: DevSettings reads it from the state
    dir's credentials.env, generating it there first on a fresh clone, before anything starts."""
    return DevSettings()


@pytest.fixture(scope="session")
def stack(settings):
    """Kafka and ClickHouse, healthy. Reuses what already answers (a `make run` stack, or a real
    clickhouse-server named by QUACKNET_CLICKHOUSE_URL); starts the rest and stops it afterwards."""
    sup = Supervisor(settings)
    started = []
    for svc in (KAFKA, CLICKHOUSE):
        if _answers(svc, settings):
            continue
        sup.start(svc)
        started.append(svc)
    if CLICKHOUSE not in started:
        _require_login(settings)  # one we started has our login; one we found may not
    yield settings
    for svc in reversed(started):
        sup.stop(svc)


def _require_login(settings) -> None:
    """A ClickHouse that answers /ping but refuses our login (one started before its state dir's
    credentials changed) would fail every test with code 516: say so once, clearly."""
    client = None
    try:
        client = warehouse.client(settings)
    except Exception as exc:
        pytest.exit(f"ClickHouse at {settings.clickhouse_url} refuses the login {settings.clickhouse_user!r} "
                    f"(from {settings.credentials_file} or QUACKNET_CLICKHOUSE_PASSWORD): {exc}. "
                    "If it is this checkout's gateway, restart it: make stop && make run", returncode=2)
    finally:
        if client is not None:
            client.close()


def _answers(svc, settings) -> bool:
    try:
        return bool(svc.healthy(settings))
    except Exception:
        return False


@pytest.fixture
def unique_name(request) -> str:
    base = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    return f"t_{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def admin(stack) -> AdminClient:
    return AdminClient({"bootstrap.servers": stack.kafka_bootstrap_servers})


@pytest.fixture
def topic(admin, stack, unique_name):
    """A fresh topic for one test (the declared partition count), deleted afterwards."""
    name = unique_name.replace("_", ".")
    admin.create_topics([NewTopic(name, num_partitions=stack.scans_partitions, replication_factor=1)])[name].result(timeout=30)
    wait_for(lambda: _has_leaders(admin, name, stack.scans_partitions), 30, f"topic {name} in the broker's metadata")
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


def _has_leaders(admin: AdminClient, name: str, partitions: int) -> bool:
    meta = admin.list_topics(name, timeout=10).topics.get(name)
    return (meta is not None and meta.error is None and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values()))


@pytest.fixture
def ch(stack):
    client = warehouse.client(stack)
    yield client
    client.close()


@pytest.fixture
def database(ch, unique_name):
    """A fresh ClickHouse database for one test, dropped afterwards."""
    ch.command(f"CREATE DATABASE {unique_name}")
    yield unique_name
    ch.command(f"DROP DATABASE IF EXISTS {unique_name} SYNC")


@pytest.fixture
def lsettings(stack, admin, ch, topic, database, unique_name):
    """Settings for one test's pipeline: its own topic, DLQ, group and migrated database."""
    migrate(ch, database)
    dlq = f"{topic}.dlq"
    admin.create_topics([NewTopic(dlq, 3, 1)])[dlq].result(timeout=30)
    yield stack.model_copy(update={
        "scans_topic": topic, "dlq_topic": dlq, "clickhouse_database": database, "loader_batch_seconds": 0.3,
        "loader_batch_rows": 5_000, "loader_group": f"loader-{unique_name}", "loader_metrics_port": free_port(),
    })
    admin.delete_topics([dlq])


@pytest.fixture(scope="module")
def served(stack, admin, tmp_path_factory):
    """The API under gunicorn (2 workers, the stack's worker class) on its own port and topic, with
    keys ``writer`` (no practical limit), ``one`` (1 request/s) and ``three`` (3/s)."""
    topic = f"t.served.{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=stack.scans_partitions, replication_factor=1)])[topic].result(30)
    settings = stack.model_copy(update={"home": tmp_path_factory.mktemp("qn"), "lib": stack.lib_dir, "scans_topic": topic,
                                        "api_port": free_port(), "api_workers": 2})
    keys = {"writer": add_key(settings.api_keys_path, "writer", {SCOPE_WRITE_SCANS}, 1_000_000),
            "one": add_key(settings.api_keys_path, "one", {SCOPE_WRITE_SCANS}, 1),
            "three": add_key(settings.api_keys_path, "three", {SCOPE_WRITE_SCANS}, 3)}
    sup = Supervisor(settings)
    sup.start(API)
    try:
        yield settings, keys, sup
    finally:
        sup.stop(API)
        admin.delete_topics([topic])


@pytest.fixture(scope="session")
def airflow_db():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=os.environ,
                   capture_output=True, timeout=300)
    return airflow_support.HOME


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
