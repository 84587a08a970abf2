"""The real Apache Kafka broker for the local stack: jars from Maven Central, KRaft mode.

One combined broker+controller on loopback. Topics are never auto-created (a typo
must not make a topic), and retention is bounded in time *and* bytes so a
developer's disk cannot fill.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from confluent_kafka.admin import AdminClient

from devtools.settings import DevSettings
from devtools.supervisor import ServiceError
from quacknet.errors import Unavailable
from quacknet.logs import get_logger

log = get_logger(__name__)

# The command-line tools of the Kafka distribution, by their script names.
TOOLS = {
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-storage": "kafka.tools.StorageTool",
}


TOOL_HEAP = ["-Xmx256m"]


class KafkaInstallError(Unavailable):
    """Maven could not resolve the Kafka jars (the message carries Maven's own words)."""


def _resource(name: str) -> Path:
    return Path(str(resources.files(__package__).joinpath(name)))


def lib_dir(settings: DevSettings) -> Path:
    return settings.lib_dir / f"kafka-{settings.kafka_version}"


def _install_key(settings: DevSettings) -> str:
    return hashlib.sha256(_resource("pom.xml").read_bytes() + settings.kafka_version.encode()).hexdigest()


def install_jars(settings: DevSettings) -> Path:
    """Resolve kafka_2.13, kafka-tools and log4j2 into the project's lib dir; a second call downloads nothing."""
    target = lib_dir(settings)
    marker = target / ".installed"
    key = _install_key(settings)
    if marker.exists() and marker.read_text() == key:
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        settings.maven, "-B", "-q", "-f", str(_resource("pom.xml")), "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}", "-DincludeScope=runtime", f"-Dkafka.version={settings.kafka_version}",
    ]
    log.info("kafka.install", version=settings.kafka_version, target=str(target))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        raise KafkaInstallError(f"mvn failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}".strip())
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    marker.write_text(key)
    return target


def server_properties(settings: DevSettings) -> str:
    data = settings.data_dir("kafka")
    host, port, cport = settings.kafka_host, settings.kafka_port, settings.kafka_controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data / "logs"),
        # Topics are created on purpose (the kafka_topics DAG), never by a producer's typo.
        "auto.create.topics.enable": "false",
        # Bounded in time and in bytes (per partition): a broker's disk cannot fill.
        "log.retention.hours": str(settings.scans_retention_hours),
        "log.retention.bytes": str(settings.retention_bytes_per_partition),
        "log.segment.bytes": str(settings.kafka_log_segment_bytes),
        "log.retention.check.interval.ms": "60000",
        "num.partitions": str(settings.scans_partitions),
        # A single node: internal topics cannot be replicated.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _java_base(settings: DevSettings, heap: list[str]) -> list[str]:
    return [
        settings.java, *heap, "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={_resource('log4j2.properties')}",
        "-cp", str(lib_dir(settings) / "*"),
    ]


def _write_properties(settings: DevSettings) -> Path:
    path = settings.data_dir("kafka") / "server.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(server_properties(settings))
    return path


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as `kafka-storage random-uuid`)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def prepare(settings: DevSettings) -> None:
    """Install the jars, write server.properties, and format KRaft storage on first start."""
    install_jars(settings)
    props = _write_properties(settings)
    if (settings.data_dir("kafka") / "logs" / "meta.properties").exists():
        return
    cmd = [*_java_base(settings, TOOL_HEAP), TOOLS["kafka-storage"], "format", "-t", new_cluster_id(), "-c", str(props)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"kafka-storage format failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    log.info("kafka.formatted", log_dirs=str(settings.data_dir("kafka") / "logs"))


def command(settings: DevSettings) -> list[str]:
    heap = [f"-Xms{settings.kafka_heap}", f"-Xmx{settings.kafka_heap}"]
    return [*_java_base(settings, heap), "-XX:+UseG1GC", "kafka.Kafka", str(_write_properties(settings))]


def tool_command(settings: DevSettings, tool: str, args: list[str]) -> list[str]:
    if tool not in TOOLS:
        raise KeyError(f"unknown Kafka tool {tool!r}; known: {', '.join(sorted(TOOLS))}")
    return [*_java_base(settings, TOOL_HEAP), "-Dquacknet.kafka.loglevel=WARN", TOOLS[tool], *args]


def run_tool(settings: DevSettings, tool: str, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one of Kafka's own command-line tools (an independent judge for tests and benchmarks)."""
    return run_tool_input(settings, tool, args, None, timeout)


def run_tool_input(settings: DevSettings, tool: str, args: list[str], stdin: str | None,
                   timeout: float = 120) -> subprocess.CompletedProcess:
    install_jars(settings)
    return subprocess.run(tool_command(settings, tool, args), input=stdin, capture_output=True, text=True, timeout=timeout)


_quiet = logging.getLogger("quacknet.kafka.health")
_quiet.setLevel(logging.CRITICAL)


def healthy(settings: DevSettings) -> bool:
    """The broker answers a metadata request."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, "logger": _quiet, "socket.timeout.ms": 2000})
    metadata = admin.list_topics(timeout=2)
    return bool(metadata.brokers)
