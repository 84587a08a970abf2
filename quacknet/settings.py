"""The one place the product reads configuration from.

Every process (the API, the loader, Airflow tasks, the CLI) builds one ``Settings`` at its entry
point and passes it down; nothing deep inside reads ``os.environ``. Values come from
``QUACKNET_*`` environment variables. Booleans are parsed explicitly (true/false, 1/0, yes/no,
on/off); anything else is an error rather than a silent ``bool("false") == True``.

These are production settings only. The local development stack extends them with its own
(``devtools.settings.DevSettings``: ports, JVM, gateway); nothing here knows that stack exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

HOUR_MS = 3_600_000
MIB = 1024 * 1024


def require_kafka_login(settings: "Settings") -> None:
    if settings.kafka_sasl and not (settings.kafka_username and settings.kafka_password.get_secret_value()):
        raise ValueError(f"QUACKNET_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
                         "QUACKNET_KAFKA_USERNAME and QUACKNET_KAFKA_PASSWORD")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUACKNET_", extra="ignore", frozen=True)

    home: Path = Field(default_factory=lambda: Path.cwd() / ".quacknet",
                       description="State dir: hashed API keys, the delivery spool.")
    log_level: str = "INFO"
    log_json: bool | None = Field(None, description="JSON log lines; default: JSON unless stderr is a terminal.")

    # Kafka: where every client connects and how it authenticates (quacknet.kafka builds each client's
    # config from these; Airflow tasks get them from the kafka_default connection's extras)
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (SASL: a username and password).")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_username: str = Field("", description="This process's Kafka principal (SASL).")
    kafka_password: SecretStr = SecretStr("")
    kafka_ssl_ca_location: Path | None = Field(None, description="PEM file of the CA(s) that signed the brokers' "
                                               "certificates (SSL, SASL_SSL); default: the system's.")
    # The principals the ACLs name (python -m quacknet kafka-acls): one per service, each allowed only
    # what it needs (quacknet.acls).
    kafka_api_principal: str = "quacknet-api"
    kafka_loader_principal: str = "quacknet-loader"
    kafka_airflow_principal: str = "quacknet-airflow"

    # ClickHouse (a clickhouse-server; clickhouse-connect over HTTP)
    clickhouse_url: str = "http://127.0.0.1:8123"
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "quacknet"
    clickhouse_cluster: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="A ClickHouse cluster (remote_servers) to migrate ON CLUSTER: Replicated engines and a "
                    "Distributed scans store sharded by scan_id (docs/cluster.md). Unset or empty: one server.")

    @field_validator("clickhouse_cluster", mode="before")
    @classmethod
    def _empty_is_one_server(cls, value):
        """Compose passes an unset .env variable as an empty string."""
        return None if value == "" else value

    # Topics: the declaration in quacknet/topics.py reads these.
    scans_topic: str = "netintel.scan.events"
    scans_partitions: int = Field(6, ge=1, description="At most this many loaders share the scans topic.")
    scans_retention_hours: int = Field(168, ge=1, description="How long Kafka keeps scans (replays reach this far).")
    dlq_topic: str = "netintel.scan.events.dlq"
    dlq_partitions: int = Field(3, ge=1)
    dlq_retention_hours: int = Field(30 * 24, ge=1, description="Poison messages are kept longer, to be looked at.")
    retention_bytes_per_partition: int = Field(512 * MIB, description="Every owned topic's disk bound, per partition.")

    # Ingest API
    api_max_batch: int = 1000
    api_max_body_bytes: int = 4 * MIB
    api_keys_file: Path | None = Field(None, description="Hashed API keys (JSON); default: $HOME/api_keys.json.")
    api_delivery_timeout_ms: int = Field(10_000, description="After this a message the broker did not take is spooled.")
    api_queue_max_messages: int = 200_000
    api_linger_ms: int = 5
    api_spool_resend_interval_s: float = 1.0
    api_wait_timeout_s: float = 15.0
    api_read_timeout_s: float = Field(10.0, gt=0, description="A read of a request that waits longer fails.")
    api_request_deadline_s: float = Field(60.0, gt=0, description="A request's headers and body must arrive within it.")
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
    audit_min_hours_left: float = Field(24.0, ge=0, description="Unread data closer than this to expiry is a violation.")
    audit_quorum_max_lag_s: float = Field(10.0, gt=0, description="A controller quorum voter behind the leader's log "
                                          "for longer than this is a violation.")

    @model_validator(mode="after")
    def _check_urls(self) -> "Settings":
        parts = urlsplit(self.clickhouse_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"QUACKNET_CLICKHOUSE_URL must be http(s)://host:port, got {self.clickhouse_url!r}")
        return self

    @model_validator(mode="after")
    def _check_kafka_login(self) -> "Settings":
        require_kafka_login(self)
        return self

    @property
    def kafka_sasl(self) -> bool:
        return self.kafka_security_protocol.startswith("SASL_")

    @property
    def kafka_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

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

    @property
    def scans_retention_ms(self) -> int:
        return self.scans_retention_hours * HOUR_MS

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
