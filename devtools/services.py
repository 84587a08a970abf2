"""The services of the local stack, in start order. Adding one is one more ``Service`` here."""

from __future__ import annotations

import shutil
import sys
import urllib.request

from devtools import airflow, credentials, kafka
from devtools.settings import PROJECT_ROOT, DevSettings
from devtools.supervisor import Service, ServiceError
from quacknet import kafka as kafka_clients
from quacknet import topics, warehouse
from quacknet.warehouse.migrations import migrate


def _gateway_command(s: DevSettings) -> list[str]:
    return [
        # The config lifts gunicorn's 8190-byte clamp on request lines (see that module).
        sys.executable, "-m", "gunicorn", "-c", "python:devtools.chgateway.gunicorn_conf", "--workers", "1",
        # gthread whose connections time out while a request is read: a half-sent request cannot hold a thread.
        "--worker-class", "api.workers.ThreadWorker",
        "--threads", str(s.gateway_threads), "--bind", f"{s.clickhouse_host}:{s.clickhouse_port}",
        "--timeout", "300", "--graceful-timeout", "30", "--keep-alive", "60",
        # ClickHouse accepts URIs up to 1 MiB (http_max_uri_size); clients put query parameters there.
        "--limit-request-line", str(s.gateway_max_uri_bytes),
        "--error-logfile", "-", "--log-level", "warning",
        "devtools.chgateway.app:create_app()",
    ]


def _http_ok(url: str, body: bytes | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200 and (body is None or resp.read() == body)


def _gateway_healthy(s: DevSettings) -> bool:
    return _http_ok(f"{s.clickhouse_url.rstrip('/')}/ping", b"Ok.\n")


def _api_command(s: DevSettings) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "api" / "gunicorn_conf.py"),
        "--workers", str(s.api_workers), "--worker-class", "api.workers.ApiWorker", "--threads", str(s.api_threads),
        "--bind", f"{s.api_host}:{s.api_port}", "--graceful-timeout", "30", "--keep-alive", "30",
        "--error-logfile", "-", "--log-level", "warning", "--chdir", str(PROJECT_ROOT), "api.wsgi:app",
    ]


def _api_prepare(s: DevSettings) -> None:
    _require_topics(s, [s.scans_topic])
    credentials.ensure_api_key(s)
    metrics_dir = s.data_dir("api") / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # multiprocess metric files of a previous run
    metrics_dir.mkdir(parents=True)


def _api_healthy(s: DevSettings) -> bool:
    return _http_ok(f"http://{s.api_host}:{s.api_port}/healthz")


def _require_topics(s: DevSettings, wanted: list[str]) -> None:
    """The API and the loader need their topics (the broker does not auto-create them); ``make run``
    has the ``kafka_topics`` DAG create them first."""
    missing = sorted(set(wanted) - set(topics.describe(kafka_clients.admin(s), wanted)))
    if missing:
        raise ServiceError(f"topic(s) {', '.join(missing)} do not exist: start Airflow too (`make run`) so the "
                           "kafka_topics DAG creates them, or trigger that DAG")


def _migrate(s: DevSettings) -> list[str]:
    client = warehouse.client(s)
    try:
        return [f"clickhouse {s.clickhouse_database}: migration {v} applied" for v in migrate(client, s.clickhouse_database)]
    finally:
        client.close()


KAFKA = Service(
    name="kafka",
    command=kafka.command,
    healthy=kafka.healthy,
    ports=lambda s: [s.kafka_port, s.kafka_controller_port],
    describe=lambda s: f"Apache Kafka {s.kafka_version} (KRaft) bootstrap {s.kafka_bootstrap_servers}",
    prepare=kafka.prepare,
)

CLICKHOUSE = Service(
    name="clickhouse",
    command=_gateway_command,
    healthy=_gateway_healthy,
    ports=lambda s: [s.clickhouse_port],
    describe=lambda s: f"ClickHouse engine (chDB gateway) {s.clickhouse_url}",
    env=lambda s: {"TZ": "UTC"},
    after_start=_migrate,
    stop_timeout_s=45.0,
)

API = Service(
    name="api",
    command=_api_command,
    healthy=_api_healthy,
    ports=lambda s: [s.api_port],
    describe=lambda s: f"ingest API (gunicorn, {s.api_workers} workers) http://{s.api_host}:{s.api_port}/v1/scans",
    prepare=_api_prepare,
    env=lambda s: {"PROMETHEUS_MULTIPROC_DIR": str(s.data_dir("api") / "prometheus")},
    stop_timeout_s=45.0,
)

LOADER = Service(
    name="loader",
    command=lambda s: [sys.executable, "-m", "quacknet.loader"],
    prepare=lambda s: _require_topics(s, [s.scans_topic, s.dlq_topic]),
    healthy=lambda s: _http_ok(f"http://{s.loader_metrics_host}:{s.loader_metrics_port}/metrics"),
    ports=lambda s: [s.loader_metrics_port],
    describe=lambda s: f"loader {s.scans_topic} -> {s.clickhouse_database}.scans (group {s.loader_group}), "
                       f"metrics http://{s.loader_metrics_host}:{s.loader_metrics_port}/metrics",
    stop_timeout_s=90.0,
)

def _airflow(name: str, component: str, health_key: str | None, **kw) -> Service:
    return Service(
        name=name, command=airflow.command(component), healthy=airflow.component_healthy(health_key),
        ports=lambda s: [s.airflow_port] if component == "api-server" else [],
        describe=lambda s: f"Airflow {component} http://{s.airflow_host}:{s.airflow_port}",
        env=airflow.env, stop_timeout_s=60.0, **kw,
    )


AIRFLOW_LOGS = Service(
    name="airflow-logs",
    command=airflow.log_server_command,
    healthy=airflow.log_servers_healthy,
    ports=lambda s: [s.airflow_worker_log_port, s.airflow_triggerer_log_port],
    describe=lambda s: f"Airflow log servers (tasks, triggerer) http://127.0.0.1:{s.airflow_worker_log_port}, "
                       f":{s.airflow_triggerer_log_port}",
    env=airflow.env,
    stop_timeout_s=30.0,
)

AIRFLOW = [
    _airflow("airflow-apiserver", "api-server", None, prepare=airflow.prepare),
    AIRFLOW_LOGS,
    _airflow("airflow-scheduler", "scheduler", "scheduler"),
    _airflow("airflow-dag-processor", "dag-processor", "dag_processor"),
    _airflow("airflow-triggerer", "triggerer", "triggerer", after_start=airflow.create_topics),
]

# Airflow before the API and the loader: its kafka_topics DAG creates the topics they need.
SERVICES: list[Service] = [KAFKA, CLICKHOUSE, *AIRFLOW, API, LOADER]


def by_name(names: list[str] | None) -> list[Service]:
    if not names:
        return list(SERVICES)
    known = {svc.name: svc for svc in SERVICES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown service(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [svc for svc in SERVICES if svc.name in names]
