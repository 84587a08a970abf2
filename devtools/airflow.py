"""The real Airflow 3 components for the local stack: api-server, scheduler, dag-processor, triggerer.

SQLite metadata and the LocalExecutor under ``.quacknet/data/airflow``; the admin's generated
password and the JWT secret are kept there (the password also in credentials.env); connections
``kafka_default`` and ``clickhouse_default`` come from AIRFLOW_CONN_* built from the settings
(the latter with the local ClickHouse's generated login). Every listener binds 127.0.0.1: the
scheduler and the triggerer skip their own log servers, which would bind every interface, and
``devtools.airflow_logs`` serves them on loopback instead.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from devtools import credentials
from devtools.airflow_logs import LOOPBACK
from devtools.settings import PROJECT_ROOT, DevSettings
from devtools.supervisor import ServiceError, port_open
from quacknet.logs import get_logger
from quacknet.retry import Backoff

ADMIN = "admin"

log = get_logger(__name__)


def home(settings: DevSettings):
    return settings.data_dir("airflow")


def env(settings: DevSettings) -> dict[str, str]:
    h = home(settings)
    base = f"http://{settings.airflow_host}:{settings.airflow_port}"
    return {
        "AIRFLOW_HOME": str(h),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{h}/airflow.db",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(settings),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(settings.airflow_worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(settings.airflow_triggerer_log_port),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devtools.airflow_logs.loopback_hostname",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(h / "passwords.json"),
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": settings.kafka_bootstrap_servers}}),
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": json.dumps({
            "conn_type": "clickhouse", "host": settings.clickhouse_host, "port": settings.clickhouse_port,
            "login": settings.clickhouse_user, "password": settings.clickhouse_password.get_secret_value(),
            "schema": settings.clickhouse_database}),
        "PYTHONPATH": str(PROJECT_ROOT),
    }


def _secret(settings: DevSettings) -> str:
    path = home(settings) / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        os.chmod(path, 0o600)
    return path.read_text().strip()


def admin_password(settings: DevSettings) -> str:
    return json.loads((home(settings) / "passwords.json").read_text())[ADMIN]


def prepare(settings: DevSettings) -> None:
    """Migrate the metadata database and make the admin's password (once)."""
    h = home(settings)
    h.mkdir(parents=True, exist_ok=True)
    passwords = h / "passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({ADMIN: secrets.token_urlsafe(16)}))
        os.chmod(passwords, 0o600)
    credentials.write(settings, {"AIRFLOW_ADMIN_USER": ADMIN, "AIRFLOW_ADMIN_PASSWORD": admin_password(settings)})
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env={**os.environ, **env(settings)},
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise ServiceError(f"airflow db migrate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def command(component: str):
    def build(settings: DevSettings) -> list[str]:
        cmd = [sys.executable, "-m", "airflow", component]
        if component == "api-server":
            cmd += ["--host", settings.airflow_host, "--port", str(settings.airflow_port)]
        if component in ("scheduler", "triggerer"):
            cmd += ["--skip-serve-logs"]  # served on loopback by devtools.airflow_logs instead
        return cmd
    return build


def log_server_command(settings: DevSettings) -> list[str]:
    return [sys.executable, "-m", "devtools.airflow_logs"]


def log_servers_healthy(settings: DevSettings) -> bool:
    return all(port_open(LOOPBACK, port) for port in (settings.airflow_worker_log_port, settings.airflow_triggerer_log_port))


def health(settings: DevSettings) -> dict:
    url = f"http://{settings.airflow_host}:{settings.airflow_port}/api/v2/monitor/health"
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def component_healthy(key: str | None):
    def check(settings: DevSettings) -> bool:
        state = health(settings)
        return state["metadatabase"]["status"] == "healthy" if key is None else state[key]["status"] == "healthy"
    return check


def api_call(settings: DevSettings, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    req = urllib.request.Request(f"http://{settings.airflow_host}:{settings.airflow_port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def token(settings: DevSettings) -> str:
    return api_call(settings, "POST", "/auth/token", {"username": ADMIN, "password": admin_password(settings)})["access_token"]


def api_call_until(settings: DevSettings, deadline: float, method: str, path: str, body: dict | None = None,
                   token: str | None = None) -> dict:
    """``api_call``, retried on a 5xx until ``deadline`` (monotonic): the local stack's Airflow keeps
    its metadata in SQLite, where a write can meet "database is locked" while the scheduler and
    the dag-processor write too. Retrying a trigger is safe for the DAGs run this way (idempotent)."""
    backoff = Backoff(0.5, 5.0, deadline_s=deadline - time.monotonic())
    while True:
        try:
            return api_call(settings, method, path, body, token)
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise
            log.warning("airflow.api_retry", method=method, path=path, status=exc.code, retry_in_s=backoff.delay)
            if not backoff.sleep():
                raise


def run_dag(settings: DevSettings, dag_id: str, conf: dict, timeout_s: float = 300,
            jwt: str | None = None) -> tuple[str, dict]:
    """Trigger a DAG run through the REST API (after the dag-processor has parsed the DAG) and
    wait for it to finish; returns (state, the run)."""
    jwt = jwt or token(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            api_call(settings, "GET", f"/api/v2/dags/{dag_id}", token=jwt)
            break
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow has not parsed DAG {dag_id} after {timeout_s:.0f}s") from None
            time.sleep(1)
    run = api_call_until(settings, deadline, "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf}, jwt)
    run = wait_for_run(settings, dag_id, run["dag_run_id"], deadline, jwt)
    return run["state"], run


def wait_for_run(settings: DevSettings, dag_id: str, run_id: str, deadline: float, jwt: str) -> dict:
    """Poll a DAG run until it succeeded or failed (its own state, not a task's); TimeoutError at
    ``deadline`` (monotonic)."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    while (run := api_call_until(settings, deadline, "GET", path, token=jwt))["state"] not in ("success", "failed"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"DAG run {dag_id}/{run_id} still {run['state']}")
        time.sleep(1)
    return run


def create_topics(settings: DevSettings) -> list[str]:
    """``make run``'s topics come from the ``kafka_topics`` DAG, run on the real scheduler."""
    jwt = token(settings)
    state, run = run_dag(settings, "kafka_topics", {"dry_run": False}, jwt=jwt)
    if state != "success":
        raise ServiceError(f"the kafka_topics DAG run {run['dag_run_id']} failed: see the Airflow UI or its task log")
    changes = api_call(settings, "GET", f"/api/v2/dags/kafka_topics/dagRuns/{run['dag_run_id']}/taskInstances/"
                       "reconcile/xcomEntries/return_value", token=jwt)["value"]
    lines = [f"topic {c['topic']}: {c['action']} {c['detail']}" for c in changes] or ["topics: nothing to change"]
    # The audit is created paused (a run before the topics exist could only find them missing).
    api_call_until(settings, time.monotonic() + 60, "PATCH", "/api/v2/dags/retention_audit", {"is_paused": False}, jwt)
    return [f"kafka_topics DAG run {run['dag_run_id']}: {state}", *lines, "retention_audit: unpaused (hourly)"]
