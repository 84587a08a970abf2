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


SECURITY_KEYS = ("authorizer.class.name", "allow.everyone.if.no.acl.found", "super.users",
                 "sasl.mechanism.inter.broker.protocol", "sasl.mechanism.controller.protocol", "process.roles",
                 "auto.create.topics.enable", "log.retention.hours", "log.retention.bytes", "log.segment.bytes",
                 "num.partitions", "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                 "transaction.state.log.min.isr", "default.replication.factor", "group.initial.rebalance.delay.ms")


def _env(svc) -> dict[str, str]:
    return {k: str(v) for k, v in svc["environment"].items()}


def test_compose_kafka_admits_only_its_own_services_as_the_local_stack_does(compose, tmp_path):
    local = dict(line.split("=", 1) for line in kafka.server_properties(DevSettings(home=tmp_path)).splitlines())
    env = _env(compose["services"]["kafka"])
    for key in SECURITY_KEYS:
        assert env["KAFKA_" + key.replace(".", "_").upper()] == local[key], key
    assert set(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")) == {
        "INTERNAL:SASL_PLAINTEXT", "EXTERNAL:SASL_PLAINTEXT", "CONTROLLER:SASL_PLAINTEXT"}
    for listener in ("INTERNAL", "EXTERNAL"):
        assert env[f"KAFKA_LISTENER_NAME_{listener}_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    # each service with its own principal, the password from .env
    services = compose["services"]
    principals = {name: _env(services[name])["QUACKNET_KAFKA_USERNAME"] for name in ("api", "loader", "airflow-scheduler")}
    assert principals == {"api": "quacknet-api", "loader": "quacknet-loader", "airflow-scheduler": "quacknet-airflow"}
    extra = json.loads(_env(services["airflow-scheduler"])["AIRFLOW_CONN_KAFKA_DEFAULT"])["extra"]
    assert (extra["security.protocol"], extra["sasl.username"]) == ("SASL_PLAINTEXT", "quacknet-airflow")
    assert _env(services["kafka-init"])["QUACKNET_KAFKA_USERNAME"] == "quacknet-admin"
    assert services["kafka-init"]["command"] == ["python", "-m", "quacknet", "kafka-acls"]
    assert services["airflow-init"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_the_api_and_the_loader_restart_and_report_their_health(compose):
    for name, probe in (("api", "/healthz"), ("loader", ":9108/metrics")):
        svc = compose["services"][name]
        assert svc["restart"] == "unless-stopped", name
        assert probe in " ".join(svc["healthcheck"]["test"]), name


@pytest.fixture(scope="module")
def cluster_profile() -> dict:
    """The `cluster` profile (with the pipeline), as the real compose CLI resolves it."""
    docker_config = DevSettings().home / "docker"
    cmd = ["docker", "compose", "-f", "docker-compose.yaml", "--env-file", ".env.example", "--profile", "cluster",
           "--profile", "pipeline", "config"]
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    quiet = subprocess.run([*cmd, "-q"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    full = subprocess.run([*cmd, "--format", "json"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(full.stdout)


KAFKA_NODES = ["kafka-1", "kafka-2", "kafka-3"]


def test_the_cluster_profile_is_three_kafka_nodes_with_the_local_clusters_settings(cluster_profile, tmp_path):
    services = cluster_profile["services"]
    local = dict(line.split("=", 1) for line in kafka.server_properties(DevSettings(home=tmp_path, kafka_nodes=3)).splitlines())
    single = _env(services["kafka"])
    hosts = set()
    for node, name in enumerate(KAFKA_NODES, 1):
        svc = services[name]
        env = _env(svc)
        assert svc["image"] == services["kafka"]["image"] and svc["profiles"] == ["cluster"] and svc["hostname"] == name
        for key in SECURITY_KEYS:
            assert env["KAFKA_" + key.replace(".", "_").upper()] == local[key], (name, key)
        assert env["KAFKA_NODE_ID"] == str(node)
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert env["KAFKA_ADVERTISED_LISTENERS"].startswith(f"INTERNAL://{name}:29092,")
        assert env["CLUSTER_ID"] != single["CLUSTER_ID"]  # a cluster of its own, not the single node's
        assert svc["command"] == services["kafka"]["command"] and svc["healthcheck"] == services["kafka"]["healthcheck"]
        assert {v["target"]: v["source"] for v in svc["volumes"]} == {"/var/lib/kafka/data": f"{name}-data"}
        hosts |= {(p["host_ip"], p["published"]) for p in svc["ports"]}
    assert {ip for ip, _ in hosts} == {"127.0.0.1"} and len(hosts) == 3
    assert {f"{n}-data" for n in KAFKA_NODES} <= set(cluster_profile["volumes"])


def test_the_default_and_pipeline_profiles_do_not_start_the_kafka_cluster(compose):
    assert not set(KAFKA_NODES) & set(compose["services"])


CLICKHOUSE_NODES = ["clickhouse-s1r1", "clickhouse-s1r2", "clickhouse-s2r1", "clickhouse-s2r2"]


def test_the_cluster_profile_is_keeper_and_two_shards_of_two_replicas_on_official_images(cluster_profile):
    services = cluster_profile["services"]
    tag = services["clickhouse"]["image"].split(":")[1]
    assert services["clickhouse-keeper"]["image"] == f"clickhouse/clickhouse-keeper:{tag}"
    for name in ["clickhouse-keeper", *CLICKHOUSE_NODES]:
        assert services[name]["profiles"] == ["cluster"], name
    for name in CLICKHOUSE_NODES:
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
    assert {f"{n}-data" for n in CLICKHOUSE_NODES} | {"clickhouse-keeper-data"} <= set(cluster_profile["volumes"])
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", name


def test_the_default_and_pipeline_profiles_do_not_start_the_cluster(compose):
    assert not {"clickhouse-keeper", *CLICKHOUSE_NODES} & set(compose["services"])
