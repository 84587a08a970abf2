"""docker-compose.yaml, validated by the real compose CLI, runs the same system as the local stack."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from devtools import kafka
from devtools.settings import PROJECT_ROOT, DevSettings


@pytest.fixture(scope="module")
def compose() -> dict:
    settings = DevSettings()
    docker_config = settings.home / "docker"
    plugin = docker_config / "cli-plugins" / "docker-compose"
    assert plugin.exists(), f"{plugin} is missing: `make compose-plugin` builds it (make test does)"
    cmd = ["docker", "compose", "-f", "docker-compose.yaml", "--env-file", ".env.example"]
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    quiet = subprocess.run([*cmd, "config", "-q"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    full = subprocess.run([*cmd, "--profile", "pipeline", "config", "--format", "json"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(full.stdout)


def test_every_part_of_the_system_is_declared(compose):
    assert {"kafka", "clickhouse", "postgres", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "api", "loader"} <= set(compose["services"])


def test_compose_kafka_is_the_local_stacks_kafka(compose, tmp_path):
    svc = compose["services"]["kafka"]
    assert svc["image"] == f"apache/kafka:{DevSettings().kafka_version}"
    env = svc["environment"]
    local = dict(line.split("=", 1) for line in kafka.server_properties(DevSettings(home=tmp_path)).splitlines())
    for key in ("auto.create.topics.enable", "log.retention.hours", "log.retention.bytes", "log.segment.bytes",
                "process.roles", "offsets.topic.replication.factor", "num.partitions"):
        assert env["KAFKA_" + key.replace(".", "_").upper()] == local[key], key
    assert "zookeeper" not in json.dumps(svc).lower()


def test_ports_are_published_on_loopback_only(compose):
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", name


def test_no_secret_is_written_into_the_compose_file():
    text = (PROJECT_ROOT / "docker-compose.yaml").read_text()
    assert "change-me" not in text
    assert "PASSWORD: ${" in text and "JWT_SECRET: ${" in text
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()  # generated secrets stay out of git


@pytest.fixture(scope="module")
def cluster() -> dict:
    """The `cluster` profile, as the real compose CLI resolves it."""
    settings = DevSettings()
    cmd = ["docker", "compose", "-f", "docker-compose.yaml", "--env-file", ".env.example", "--profile", "cluster", "config"]
    env = {**os.environ, "DOCKER_CONFIG": str(settings.home / "docker")}
    quiet = subprocess.run([*cmd, "-q"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    full = subprocess.run([*cmd, "--format", "json"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(full.stdout)


NODES = ["clickhouse-s1r1", "clickhouse-s1r2", "clickhouse-s2r1", "clickhouse-s2r2"]


def test_the_cluster_profile_is_keeper_and_two_shards_of_two_replicas_on_official_images(cluster):
    services = cluster["services"]
    tag = services["clickhouse"]["image"].split(":")[1]
    assert services["clickhouse-keeper"]["image"] == f"clickhouse/clickhouse-keeper:{tag}"
    for name in ["clickhouse-keeper", *NODES]:
        assert services[name]["profiles"] == ["cluster"], name
    for name in NODES:
        svc = services[name]
        assert svc["image"] == services["clickhouse"]["image"] and svc["hostname"] == name
        assert svc["depends_on"]["clickhouse-keeper"]["condition"] == "service_healthy"
        mounts = {v["target"]: v["source"] for v in svc["volumes"]}
        assert mounts["/etc/clickhouse-server/config.d/cluster.xml"].endswith("docker/clickhouse-cluster/cluster.xml")
        macros = mounts["/etc/clickhouse-server/config.d/macros.xml"]
        assert macros.endswith(f"docker/clickhouse-cluster/macros/{name.removeprefix('clickhouse-')}.xml")  # its own
        assert all(Path(src).exists() for src in mounts.values() if src.startswith("/")), mounts
        assert mounts["/var/lib/clickhouse"] == f"{name}-data"
        assert svc["environment"]["CLICKHOUSE_CLUSTER_SECRET"] == svc["environment"]["CLICKHOUSE_PASSWORD"]  # from .env
    assert {f"{n}-data" for n in NODES} | {"clickhouse-keeper-data"} <= set(cluster["volumes"])
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", name


def test_the_default_and_pipeline_profiles_do_not_start_the_cluster(compose):
    assert not {"clickhouse-keeper", *NODES} & set(compose["services"])
