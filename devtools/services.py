"""The services of the local stack, in start order. Adding one is one more ``Service`` here."""

from __future__ import annotations

import functools
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
    has the ``kafka_topics`` DAG create them first. Asked as the operators' principal."""
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


@functools.cache
def kafka_node(node: int) -> Service:
    """Node ``node`` of the local Kafka cluster: ``kafka`` (node 1), ``kafka-2``, ``kafka-3``, ... Its
    nodes form one group: launched together, since none is healthy before a quorum of voters runs."""
    def describe(s: DevSettings) -> str:
        port, cport = s.kafka_node_ports(node)
        what = "" if s.kafka_nodes == 1 else f" node {node} of {s.kafka_nodes} (broker+controller)"
        return f"Apache Kafka {s.kafka_version} (KRaft){what} {s.kafka_host}:{port}, controller :{cport}, heap {s.kafka_heap}"

    return Service(
        name=kafka.node_name(node),
        command=functools.partial(kafka.command, node=node),
        healthy=functools.partial(kafka.healthy, node=node),
        ports=lambda s: list(s.kafka_node_ports(node)),
        describe=describe,
        prepare=functools.partial(kafka.prepare, node=node),
        group="kafka",
        # once every node of the group is healthy: the services' logins and ACLs (node 1 does it for all)
        after_start=kafka.secure if node == 1 else None,
    )


KAFKA = kafka_node(1)


def kafka_nodes(settings: DevSettings) -> list[Service]:
    """The nodes the settings ask for (QUACKNET_KAFKA_NODES)."""
    return [kafka_node(n) for n in range(1, settings.kafka_nodes + 1)]

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
    env=lambda s: {"PROMETHEUS_MULTIPROC_DIR": str(s.data_dir("api") / "prometheus"), **s.kafka_service_env("api")},
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
    env=lambda s: s.kafka_service_env("loader"),
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

def stack(settings: DevSettings) -> list[Service]:
    """Every service of the local stack, in start order: the Kafka nodes, ClickHouse, Airflow (before the
    API and the loader: its kafka_topics DAG creates the topics they need), the API, the loader."""
    return [*kafka_nodes(settings), CLICKHOUSE, *AIRFLOW, API, LOADER]


# The default one-node stack (stack(settings) is the stack of any settings).
SERVICES: list[Service] = [KAFKA, CLICKHOUSE, *AIRFLOW, API, LOADER]


def running_extra_nodes(settings: DevSettings) -> list[Service]:
    """Kafka nodes beyond QUACKNET_KAFKA_NODES that have a pid file here (a cluster started with another
    node count): `make stop` and `make status` must not leave them out."""
    found = []
    for pid_file in settings.run_dir.glob("kafka-*.pid"):
        suffix = pid_file.stem.removeprefix("kafka-")
        if suffix.isdigit() and int(suffix) > settings.kafka_nodes:
            found.append(kafka_node(int(suffix)))
    return sorted(found, key=lambda svc: int(svc.name.removeprefix("kafka-")))


def by_name(settings: DevSettings, names: list[str] | None, include_running: bool = False,
            whole_groups: bool = False) -> list[Service]:
    """The named services of the stack (all of them when none is named), in start order; with
    ``include_running``, also Kafka nodes beyond the configured count that run (for stop and status);
    with ``whole_groups``, a named cluster node brings its whole group (a KRaft node cannot start
    without a quorum of its voters; stopping one node alone stays possible)."""
    services = stack(settings)
    if include_running:
        extra = running_extra_nodes(settings)
        at = max(i for i, svc in enumerate(services) if svc.group == "kafka") + 1
        services = services[:at] + extra + services[at:]
    if not names:
        return services
    known = {svc.name: svc for svc in services}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown service(s): {', '.join(unknown)}; known: {', '.join(known)}")
    groups = {known[n].group for n in names if whole_groups and known[n].group is not None}
    return [svc for svc in services if svc.name in names or svc.group in groups]
