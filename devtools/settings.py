"""Settings of the local development stack: the product's ``Settings`` plus how this machine runs
each service (ports, the JVM and Maven, the ClickHouse gateway, the local Airflow).

A ``DevSettings`` is a ``Settings``, so the stack hands it to product code unchanged, and
``to_env()`` passes both halves to the processes it starts (the product ignores the rest).

The local ClickHouse is locked like a real server: unless a password is given explicitly
(``QUACKNET_CLICKHOUSE_PASSWORD``, e.g. for a real clickhouse-server), the login comes from the
state dir's credentials.env, generated there the first time (``devtools.credentials``). Deriving
it here means every entry point (``make run``, the tests' fixtures, the soak, the benchmarks) gets
the same login without remembering to ask, and child processes get it through ``to_env()``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from devtools import credentials
from quacknet.settings import MIB, Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DevSettings(Settings):
    home: Path = Field(PROJECT_ROOT / ".quacknet", description="State dir of the local stack (pids, logs, data, jars).")
    lib: Path | None = Field(None, description="Where downloaded jars live; default: $HOME/lib (shareable between state dirs).")

    # The local Kafka broker
    kafka_bootstrap_servers: str = Field("", description="Clients' bootstrap list; default: kafka_host:kafka_port.")
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_version: str = "4.4.0"
    kafka_heap: str = "512m"
    kafka_log_segment_bytes: int = 64 * MIB
    java: str = Field("java", description="The java binary that runs the broker and the Kafka tools.")
    maven: str = Field("mvn", description="The Maven binary that resolves the Kafka jars.")

    # The local ClickHouse gateway (chDB behind ClickHouse's HTTP interface)
    gateway_threads: int = 16
    gateway_session_timeout_s: float = 60.0
    gateway_max_sessions: int = 1024
    gateway_max_uri_bytes: int = Field(MIB, ge=1024, description="Longest request line (clickhouse-server's http_max_uri_size).")
    gateway_max_query_bytes: int = Field(16 * MIB, ge=1024, description="Longest statement text held in memory (query parameter "
                                         "plus body, except a streamed INSERT's data).")
    gateway_max_body_bytes: int = Field(1024 * MIB, ge=1024, description="Largest request body after decompression "
                                        "(clickhouse-server's http_max_multipart_form_data_size).")

    # The ingest API under gunicorn
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(2, ge=1, description="gunicorn worker processes.")
    api_threads: int = 8

    # The local Airflow
    airflow_host: str = "127.0.0.1"
    airflow_port: int = 8080
    airflow_worker_log_port: int = Field(8793, description="Airflow's task log server ([logging] worker_log_server_port).")
    airflow_triggerer_log_port: int = Field(8794, description="Airflow's triggerer log server ([logging] trigger_log_server_port).")

    service_start_timeout_s: float = 120.0

    @model_validator(mode="after")
    def _derive(self) -> "DevSettings":
        if not self.kafka_bootstrap_servers:
            object.__setattr__(self, "kafka_bootstrap_servers", f"{self.kafka_host}:{self.kafka_port}")
        if "clickhouse_password" not in self.model_fields_set:
            user, password = credentials.clickhouse_login(self.credentials_file)
            if "clickhouse_user" not in self.model_fields_set:
                object.__setattr__(self, "clickhouse_user", user)
            object.__setattr__(self, "clickhouse_password", SecretStr(password))
        return self

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def lib_dir(self) -> Path:
        return self.lib or self.home / "lib"

    @property
    def credentials_file(self) -> Path:
        return self.home / "credentials.env"
