"""The one place QuackNet reads configuration from.

Every process (CLI, gateway, API, loader, Airflow tasks) builds one ``Settings``
at its entry point and passes it down; nothing deep inside reads ``os.environ``.
Values come from ``QUACKNET_*`` environment variables. Booleans are parsed
explicitly (true/false, 1/0, yes/no, on/off); anything else is an error rather
than a silent ``bool("false") == True``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUACKNET_", extra="ignore", frozen=True)

    home: Path = Field(PROJECT_ROOT / ".quacknet", description="State dir of the local stack (pids, logs, data, jars).")
    lib: Path | None = Field(None, description="Where downloaded jars live; default: $HOME/lib (shareable between state dirs).")
    log_level: str = "INFO"
    log_json: bool | None = Field(None, description="JSON log lines; default: JSON unless stderr is a terminal.")

    # Kafka (clients)
    kafka_bootstrap_servers: str = Field("", description="Clients' bootstrap list; default: kafka_host:kafka_port.")
    # Kafka (local broker of the dev stack)
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_version: str = "4.4.0"
    kafka_heap: str = "512m"
    kafka_log_retention_hours: int = 168
    kafka_log_retention_bytes: int = Field(512 * 1024 * 1024, description="Per partition: the disk bound.")
    kafka_log_segment_bytes: int = 64 * 1024 * 1024
    java: str = Field("java", description="The java binary that runs the broker and the Kafka tools.")
    maven: str = Field("mvn", description="The Maven binary that resolves the Kafka jars.")

    # ClickHouse (clients; in production a clickhouse-server, locally the chDB gateway)
    clickhouse_url: str = "http://127.0.0.1:8123"
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "quacknet"
    # Local ClickHouse gateway (dev stack only)
    gateway_threads: int = 16
    gateway_session_timeout_s: float = 60.0
    gateway_max_sessions: int = 1024

    # Topics
    scans_topic: str = "netintel.scan.events"
    dlq_topic: str = "netintel.scan.events.dlq"

    # Ingest API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 2
    api_threads: int = 8
    api_max_batch: int = 1000
    api_max_body_bytes: int = 4 * 1024 * 1024
    api_keys_file: Path | None = Field(None, description="Hashed API keys (JSON); default: $HOME/api_keys.json.")
    api_delivery_timeout_ms: int = Field(10_000, description="After this a message the broker did not take is spooled.")
    api_queue_max_messages: int = 200_000
    api_linger_ms: int = 5
    api_spool_resend_interval_s: float = 1.0
    api_wait_timeout_s: float = 15.0
    spool_max_messages: int = 2_000_000

    # Loader (Kafka -> ClickHouse)
    loader_group: str = "clickhouse-loader"
    loader_batch_rows: int = 50_000
    loader_batch_seconds: float = 1.0
    loader_metrics_host: str = "127.0.0.1"
    loader_metrics_port: int = 9108
    loader_retry_max_s: float = 10.0

    # Retention audit
    audit_disk_budget_bytes: int = Field(8 * 2**30, description="Kafka log dirs may use this much per broker.")
    audit_min_free_ratio: float = Field(0.10, ge=0, le=1, description="Share of a log dir's volume that must stay free.")

    # Airflow (local stack)
    airflow_host: str = "127.0.0.1"
    airflow_port: int = 8080

    service_start_timeout_s: float = 120.0

    @model_validator(mode="after")
    def _derive(self) -> "Settings":
        if not self.kafka_bootstrap_servers:
            object.__setattr__(self, "kafka_bootstrap_servers", f"{self.kafka_host}:{self.kafka_port}")
        parts = urlsplit(self.clickhouse_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"QUACKNET_CLICKHOUSE_URL must be http(s)://host:port, got {self.clickhouse_url!r}")
        return self

    # Derived locations: one layout for every service.
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

    @property
    def api_keys_path(self) -> Path:
        return self.api_keys_file or self.home / "api_keys.json"

    @property
    def spool_path(self) -> Path:
        return self.data_dir("api") / "spool.sqlite3"

    def data_dir(self, service: str) -> Path:
        return self.home / "data" / service

    @property
    def clickhouse_host(self) -> str:
        return urlsplit(self.clickhouse_url).hostname or "127.0.0.1"

    @property
    def clickhouse_port(self) -> int:
        parts = urlsplit(self.clickhouse_url)
        return parts.port or (8443 if parts.scheme == "https" else 8123)

    def to_env(self) -> dict[str, str]:
        """QUACKNET_* variables that rebuild exactly these settings in a child process."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, bool):
                value = "true" if value else "false"
            env[f"QUACKNET_{name.upper()}"] = str(value)
        return env
