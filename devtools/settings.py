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
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from devtools import credentials
from quacknet.settings import MIB, Settings, require_kafka_login

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DevSettings(Settings):
    home: Path = Field(PROJECT_ROOT / ".quacknet", description="State dir of the local stack (pids, logs, data, jars).")
    lib: Path | None = Field(None, description="Where downloaded jars live; default: $HOME/lib (shareable between state dirs).")

    # The local Kafka broker
    kafka_bootstrap_servers: str = Field("", description="Clients' bootstrap list; default: every node's kafka_host:port.")
    kafka_host: str = "127.0.0.1"
    kafka_port: int = Field(9092, description="Node 1's client listener; node n listens on kafka_port + 2(n-1).")
    kafka_controller_port: int = Field(9093, description="Node 1's controller listener; node n's is this + 2(n-1).")
    kafka_nodes: int = Field(1, ge=1, le=9, description="KRaft nodes, each broker and controller: 3 makes a three-voter cluster.")
    kafka_version: str = "4.4.0"
    kafka_heap: str = Field("512m", description="Each node's JVM heap (-Xms and -Xmx).")
    # The local cluster admits only its own services: SASL/SCRAM-SHA-512 on the client listeners (over TLS
    # with SASL_SSL, certificates generated into data/kafka-tls/). The login fields below default to the
    # generated ones in credentials.env; kafka_username/_password (the product's) are the operators' principal.
    kafka_security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "SASL_PLAINTEXT", description="The local brokers' client listeners: SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_broker_password: SecretStr = Field(SecretStr(""), description="The brokers' own principal (inter-broker SCRAM).")
    kafka_controller_password: SecretStr = Field(SecretStr(""), description="The brokers' login to the controllers (PLAIN).")
    kafka_api_password: SecretStr = SecretStr("")
    kafka_loader_password: SecretStr = SecretStr("")
    kafka_airflow_password: SecretStr = SecretStr("")
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
        ports = [p for node in range(1, self.kafka_nodes + 1) for p in self.kafka_node_ports(node)]
        if len(set(ports)) != len(ports):
            raise ValueError(f"QUACKNET_KAFKA_PORT {self.kafka_port} and QUACKNET_KAFKA_CONTROLLER_PORT "
                             f"{self.kafka_controller_port} give {self.kafka_nodes} nodes overlapping ports {sorted(ports)}: "
                             "node n uses both + 2(n-1); make them differ by an odd number")
        if not self.kafka_bootstrap_servers:
            object.__setattr__(self, "kafka_bootstrap_servers", self.kafka_node_bootstrap())
        if self.kafka_tls and self.kafka_ssl_ca_location is None:
            object.__setattr__(self, "kafka_ssl_ca_location", self.kafka_tls_dir / "ca.pem")
        if "clickhouse_password" not in self.model_fields_set:
            user, password = credentials.clickhouse_login(self.credentials_file)
            if "clickhouse_user" not in self.model_fields_set:
                object.__setattr__(self, "clickhouse_user", user)
            object.__setattr__(self, "clickhouse_password", SecretStr(password))
        return self

    @model_validator(mode="after")
    def _check_kafka_login(self) -> "DevSettings":
        """The generated logins (credentials.env) for every Kafka principal not given explicitly: the
        operators' for this process, and the services' and brokers' for the processes it starts."""
        logins = None
        for name, key in (("kafka_password", "KAFKA_ADMIN_PASSWORD"), ("kafka_broker_password", "KAFKA_BROKER_PASSWORD"),
                          ("kafka_controller_password", "KAFKA_CONTROLLER_PASSWORD"),
                          ("kafka_api_password", "KAFKA_API_PASSWORD"), ("kafka_loader_password", "KAFKA_LOADER_PASSWORD"),
                          ("kafka_airflow_password", "KAFKA_AIRFLOW_PASSWORD")):
            if name not in self.model_fields_set:
                logins = logins or credentials.kafka_logins(self.credentials_file)
                object.__setattr__(self, name, SecretStr(logins[key]))
                if name == "kafka_password" and "kafka_username" not in self.model_fields_set:
                    object.__setattr__(self, "kafka_username", logins["KAFKA_ADMIN_USER"])
        require_kafka_login(self)
        return self

    def kafka_login(self, service: str) -> tuple[str, str]:
        """(principal, password) of a service: ``api``, ``loader``, ``airflow``, ``admin`` (the operators')."""
        if service == "admin":
            return self.kafka_username, self.kafka_password.get_secret_value()
        principal = getattr(self, f"kafka_{service}_principal")
        return principal, getattr(self, f"kafka_{service}_password").get_secret_value()

    def as_kafka_service(self, service: str) -> "DevSettings":
        """These settings with a service's Kafka principal as this process's login."""
        user, password = self.kafka_login(service)
        return self.model_copy(update={"kafka_username": user, "kafka_password": SecretStr(password)})

    def kafka_service_env(self, service: str) -> dict[str, str]:
        """QUACKNET_KAFKA_USERNAME / _PASSWORD for a process that runs as the service's principal."""
        user, password = self.kafka_login(service)
        return {"QUACKNET_KAFKA_USERNAME": user, "QUACKNET_KAFKA_PASSWORD": password}

    @property
    def kafka_tls_dir(self) -> Path:
        """The local cluster's generated CA and broker certificate (SASL_SSL)."""
        return self.data_dir("kafka-tls")

    def kafka_node_ports(self, node: int) -> tuple[int, int]:
        """Node ``node``'s (client, controller) ports: node 1 on kafka_port / kafka_controller_port, each next
        node two further (9092/9093, 9094/9095, 9096/9097), so a stack on other ports gets its own."""
        return self.kafka_port + 2 * (node - 1), self.kafka_controller_port + 2 * (node - 1)

    def kafka_node_bootstrap(self) -> str:
        """Every node's client listener: the bootstrap list the stack's clients use."""
        return ",".join(f"{self.kafka_host}:{self.kafka_node_ports(n)[0]}" for n in range(1, self.kafka_nodes + 1))

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
