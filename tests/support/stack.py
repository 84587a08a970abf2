"""A local stack of a test's own: its own state dir and a free port for every listener (Kafka,
its controller, the gateway, the API, the loader's metrics, Airflow's api-server and log servers),
so it never collides with `make run` or another test's stack."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from devtools.settings import DevSettings
from devtools.supervisor import free_port, port_open


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port_block(n: int, attempts: int = 200) -> int:
    """The first of ``n`` consecutive loopback ports nobody listens on now (a Kafka cluster's nodes take
    two each, counted up from the first node's), above the kernel's ephemeral range where it can: a
    client that keeps dialling a killed broker's port inside that range can be handed the port itself as
    its local one (a TCP self-connect) and hold it, and the restarted broker then cannot bind it."""
    _, high = _ephemeral_range()
    for _ in range(attempts):
        first = random.randint(high + 1, 65535 - n) if high + 1 <= 65535 - n else free_port()
        ports = range(first, first + n)
        if all(_bindable(p) for p in ports):
            return first
    raise RuntimeError(f"no block of {n} free loopback ports found")


def _bindable(port: int) -> bool:
    if port_open("127.0.0.1", port):
        return False
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def own_ports(base: DevSettings, home: Path, **overrides) -> DevSettings:
    """``overrides`` may set ``kafka_nodes``: every node gets its two ports from one free block."""
    nodes = overrides.get("kafka_nodes", base.kafka_nodes)
    kafka_port = free_port_block(2 * nodes)
    settings = base.model_copy(update={
        "home": home, "lib": base.lib_dir, "kafka_port": kafka_port, "kafka_controller_port": kafka_port + 1,
        "clickhouse_url": f"http://127.0.0.1:{free_port()}",
        "api_port": free_port(), "loader_metrics_port": free_port(), "airflow_port": free_port(),
        "airflow_worker_log_port": free_port(), "airflow_triggerer_log_port": free_port(), **overrides,
    })
    if "kafka_bootstrap_servers" in overrides:
        return settings
    return settings.model_copy(update={"kafka_bootstrap_servers": settings.kafka_node_bootstrap()})
