"""Settings of the local development stack: the product's ``Settings`` plus how this machine runs
each service (ports, the JVM and Maven, the ClickHouse gateway, the local Airflow).

A ``DevSettings`` is a ``Settings``, so the stack hands it to product code unchanged, and
``to_env()`` passes both halves to the processes it starts (the product ignores the rest).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

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

    # The ingest API under gunicorn
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(2, ge=1, description="gunicorn worker processes.")
    api_threads: int = 8

    # The local Airflow
    airflow_host: str = "127.0.0.1"
    airflow_port: int = 8080

    service_start_timeout_s: float = 120.0

    @model_validator(mode="after")
    def _derive(self) -> "DevSettings":
        if not self.kafka_bootstrap_servers:
            object.__setattr__(self, "kafka_bootstrap_servers", f"{self.kafka_host}:{self.kafka_port}")
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
