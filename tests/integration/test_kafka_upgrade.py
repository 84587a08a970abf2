"""A state dir of an earlier QuackNet (a one-node broker formatted without logins, before the local
cluster required SASL/SCRAM) is taken over by `make run`: the broker gets its logins, keeps what it
stores, and from then on lets in only the stack's own principals. A broker of its own, on its own ports."""

from __future__ import annotations

import json
import logging
import subprocess

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from devtools import kafka as devkafka
from devtools.cli import ensure_services, stop_services
from devtools.services import KAFKA
from devtools.settings import DevSettings
from devtools.supervisor import Supervisor
from quacknet import kafka as qkafka
from tests.support.stack import own_ports
from tests.support.waiting import wait_for

_quiet = logging.getLogger("tests.upgrade")
_quiet.setLevel(logging.CRITICAL)
TOPIC = "earlier.scans"


def earlier_properties(settings: DevSettings) -> str:
    """The one node's properties as QuackNet wrote them before the cluster required logins (main at
    211e9ae), verbatim: listener PLAINTEXT, no SASL, no authorizer."""
    host, port, cport = settings.kafka_host, settings.kafka_port, settings.kafka_controller_port
    props = {
        "process.roles": "broker,controller", "node.id": "1", "controller.quorum.voters": f"1@{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}", "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(devkafka.node_dir(settings, 1) / "logs"), "auto.create.topics.enable": "false",
        "log.retention.hours": str(settings.scans_retention_hours), "log.retention.bytes": str(settings.retention_bytes_per_partition),
        "log.segment.bytes": str(settings.kafka_log_segment_bytes), "log.retention.check.interval.ms": "60000",
        "num.partitions": str(settings.scans_partitions), "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1", "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1", "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A broker formatted, run and filled as an earlier QuackNet did: PLAINTEXT, no SCRAM logins, no layout file."""
    settings = own_ports(DevSettings(), tmp_path_factory.mktemp("upgrade") / "qn", kafka_nodes=1)
    devkafka.install_jars(settings)
    props = devkafka.node_dir(settings, 1) / "server.properties"
    props.parent.mkdir(parents=True)
    props.write_text(earlier_properties(settings))
    formatted = devkafka.run_tool(settings, "kafka-storage", ["format", "-t", devkafka.new_cluster_id(), "-c", str(props)])
    assert formatted.returncode == 0, formatted.stderr[-2000:]
    broker = subprocess.Popen([*devkafka._java_base(settings, ["-Xmx512m"]), "kafka.Kafka", str(props)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        plain = {"bootstrap.servers": settings.kafka_bootstrap_servers, "logger": _quiet}
        wait_for(lambda: _answers(plain), 120, "the earlier broker")
        admin = AdminClient(plain)
        admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])[TOPIC].result(30)
        producer = Producer({**plain, "acks": "all"})
        for i in range(10):
            producer.produce(TOPIC, key=str(i).encode(), value=f"scan-{i}".encode())
        assert producer.flush(30) == 0
        del producer, admin  # no client of the earlier broker keeps dialling its port
    finally:
        broker.terminate()
        broker.wait(60)
    assert devkafka.layout(settings) == {"nodes": 1, "cluster_id": devkafka._meta(settings, 1)["cluster.id"]}
    seen = {}
    upsert = devkafka._upsert_logins

    def watching(address, logins):  # while the unsecured broker runs, node 1's pid file names it
        proc = Supervisor(settings).process(KAFKA)
        seen["cmdline"] = proc.cmdline() if proc else []
        seen["users"] = [user for user, _ in logins]
        return upsert(address, logins)

    devkafka._upsert_logins = watching
    try:
        ensure_services(settings, [KAFKA], echo=lambda line: None)  # what `make run` does
        devkafka._upsert_logins = upsert
        assert "kafka.Kafka" in seen["cmdline"] and seen["cmdline"][-1].endswith("unsecured.properties")
        assert seen["users"] == [devkafka.BROKER_USER, settings.kafka_username]
        yield settings
    finally:
        devkafka._upsert_logins = upsert
        stop_services(settings, [KAFKA], echo=lambda line: None)


def _answers(config: dict) -> bool:
    try:
        return 1 in AdminClient(config).list_topics(timeout=2).brokers
    except KafkaException:
        return False


def test_the_earlier_broker_gets_its_logins_and_keeps_what_it_stored(earlier):
    settings = earlier
    assert not (devkafka.node_dir(settings, 1) / "unsecured.properties").exists()
    layout = json.loads((devkafka.node_dir(settings, 1) / devkafka.LAYOUT).read_text())
    assert layout["logins"] == devkafka._logins_digest(settings) and layout["nodes"] == 1
    consumer = qkafka.consumer(settings, "upgrade-check", logger=_quiet)  # the operators' login
    consumer.subscribe([TOPIC])
    got = set()
    try:
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                got.add(msg.value().decode())
            if len(got) == 10:
                break
    finally:
        consumer.close()
    assert got == {f"scan-{i}" for i in range(10)}


def test_after_the_upgrade_no_client_gets_in_without_a_login(earlier):
    anonymous = AdminClient({"bootstrap.servers": earlier.kafka_bootstrap_servers, "socket.timeout.ms": 2000})
    with pytest.raises(KafkaException):
        anonymous.list_topics(timeout=5)
    listed = devkafka.run_tool(earlier, "kafka-topics", ["--bootstrap-server", earlier.kafka_bootstrap_servers, "--list"])
    assert listed.returncode == 0 and TOPIC in listed.stdout, listed.stderr[-2000:]


def test_a_restart_starts_the_secured_broker_without_adding_logins_again(earlier, monkeypatch):
    def refuse(*args):
        raise AssertionError("add_logins ran again")

    monkeypatch.setattr(devkafka, "add_logins", refuse)
    stop_services(earlier, [KAFKA], echo=lambda line: None)
    ensure_services(earlier, [KAFKA], echo=lambda line: None)
    assert TOPIC in qkafka.admin(earlier, logger=_quiet).list_topics(timeout=10).topics
