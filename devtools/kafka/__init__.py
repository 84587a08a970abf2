"""The real Apache Kafka broker for the local stack: jars from Maven Central, KRaft mode.

One node by default, or a cluster of ``QUACKNET_KAFKA_NODES`` (three: a three-voter quorum), each
node a combined broker+controller on loopback with a bounded heap. It admits only its own
principals: SASL/SCRAM-SHA-512 on the client listener (over TLS with SASL_SSL), PLAIN towards the
controllers, the StandardAuthorizer with QuackNet's ACLs (``quacknet.acls``), logins from
credentials.env. Topics are never auto-created (a typo must not make a topic), and retention is
bounded in time *and* bytes so a developer's disk cannot fill.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import psutil
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from devtools.kafka import tls
from devtools.settings import DevSettings
from devtools.supervisor import ServiceError
from quacknet import acls
from quacknet import kafka as kafka_clients
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
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
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


def node_name(node: int) -> str:
    """Node 1 is service ``kafka`` (as on a one-node stack), node n ``kafka-n``: pid file, log and data dir."""
    return "kafka" if node == 1 else f"kafka-{node}"


def node_dir(settings: DevSettings, node: int) -> Path:
    return settings.data_dir(node_name(node))


def replication_factor(nodes: int) -> int:
    """Internal topics (and the declared ones, quacknet.topics): three copies once there are three brokers."""
    return min(3, nodes)


CLIENT = "CLIENT"  # the client (and inter-broker) listener's name; the other is CONTROLLER
BROKER_USER = "broker"  # the brokers' principal towards each other (SCRAM) and the controllers (PLAIN)
SCRAM_ITERATIONS = 8192


def _jaas(module: str, **options: str) -> str:
    return f"org.apache.kafka.common.security.{module} required " + " ".join(f'{k}="{v}"' for k, v in options.items()) + ";"


def server_properties(settings: DevSettings, node: int = 1) -> str:
    host = settings.kafka_host
    port, cport = settings.kafka_node_ports(node)
    voters = ",".join(f"{n}@{host}:{settings.kafka_node_ports(n)[1]}" for n in range(1, settings.kafka_nodes + 1))
    rf = replication_factor(settings.kafka_nodes)
    min_isr = 2 if rf >= 3 else 1
    broker_pw = settings.kafka_broker_password.get_secret_value()
    controller_pw = settings.kafka_controller_password.get_secret_value()
    listener = CLIENT.lower()
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node),
        # A static quorum: every node is a voter, fixed when the cluster is formatted (see prepare).
        "controller.quorum.voters": voters,
        "listeners": f"{CLIENT}://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"{CLIENT}://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": CLIENT,
        "listener.security.protocol.map": f"{CLIENT}:{settings.kafka_security_protocol},CONTROLLER:SASL_PLAINTEXT",
        # Only the cluster's own principals get in: SCRAM-SHA-512 on the client listener (its logins live
        # in the cluster's metadata, the brokers' and the operators' bootstrapped by `kafka-storage format
        # --add-scram`), PLAIN between brokers and controllers (static in this file: controllers must
        # authenticate brokers before any metadata exists). Nobody is allowed what no ACL allows.
        f"listener.name.{listener}.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        f"listener.name.{listener}.scram-sha-512.sasl.jaas.config": _jaas(
            "scram.ScramLoginModule", username=BROKER_USER, password=broker_pw),
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": _jaas(
            "plain.PlainLoginModule", username=BROKER_USER, password=controller_pw, **{f"user_{BROKER_USER}": controller_pw}),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{BROKER_USER};User:{settings.kafka_username}",
        "allow.everyone.if.no.acl.found": "false",
        "log.dirs": str(node_dir(settings, node) / "logs"),
        # Topics are created on purpose (the kafka_topics DAG), never by a producer's typo.
        "auto.create.topics.enable": "false",
        # Bounded in time and in bytes (per partition): a broker's disk cannot fill.
        "log.retention.hours": str(settings.scans_retention_hours),
        "log.retention.bytes": str(settings.retention_bytes_per_partition),
        "log.segment.bytes": str(settings.kafka_log_segment_bytes),
        "log.retention.check.interval.ms": "60000",
        "num.partitions": str(settings.scans_partitions),
        # Internal topics as replicated as the cluster allows (one node: they cannot be). The brokers'
        # min.insync.replicas stays 1: QuackNet's own topics set 2 themselves at three copies
        # (quacknet.topics), and a one-copy test topic on a cluster must stay writable.
        "default.replication.factor": str(rf),
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(min_isr),
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        "group.initial.rebalance.delay.ms": "0",
    }
    if settings.kafka_tls:
        paths = tls.ensure(settings.kafka_tls_dir)
        props.update({
            f"listener.name.{listener}.ssl.keystore.type": "PKCS12",
            f"listener.name.{listener}.ssl.keystore.location": str(paths["keystore"]),
            f"listener.name.{listener}.ssl.keystore.password": paths["password"].read_text().strip(),
            f"listener.name.{listener}.ssl.key.password": paths["password"].read_text().strip(),
            # the brokers' own connections to each other verify the certificate as any client does
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(paths["ca"]),
        })
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _java_base(settings: DevSettings, heap: list[str]) -> list[str]:
    return [
        settings.java, *heap, "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={_resource('log4j2.properties')}",
        "-cp", str(lib_dir(settings) / "*"),
    ]


def _write_private(path: Path, text: str) -> Path:
    """A file holding passwords: mode 600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)
    return path


def _write_properties(settings: DevSettings, node: int) -> Path:
    return _write_private(node_dir(settings, node) / "server.properties", server_properties(settings, node))


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as `kafka-storage random-uuid`)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


# -- the cluster's layout, fixed when it is formatted ------------------------------------------------

LAYOUT = "cluster.json"


def _layout_path(settings: DevSettings) -> Path:
    return node_dir(settings, 1) / LAYOUT


def _meta(settings: DevSettings, node: int) -> dict[str, str]:
    path = node_dir(settings, node) / "logs" / "meta.properties"
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


def layout(settings: DevSettings) -> dict | None:
    """What this state dir's cluster was formatted as: nodes, cluster id, and the digest of the logins it
    was given (None: never formatted). A node-1 log dir without the layout file is a one-node broker of
    an earlier QuackNet, formatted without any login."""
    path = _layout_path(settings)
    if path.exists():
        return json.loads(path.read_text())
    meta = _meta(settings, 1)
    if meta:
        return {"nodes": 1, "cluster_id": meta.get("cluster.id")}
    return None


def _logins_digest(settings: DevSettings) -> str:
    """What the cluster's formatted logins must match (never the passwords themselves)."""
    secret = "\n".join([settings.kafka_username, settings.kafka_password.get_secret_value(),
                        settings.kafka_broker_password.get_secret_value(), settings.kafka_controller_password.get_secret_value()])
    return hashlib.sha256(secret.encode()).hexdigest()


def check_layout(settings: DevSettings) -> dict | None:
    """The layout, if it fits the settings; a ServiceError saying what to do if it does not."""
    found = layout(settings)
    if found is not None and found["nodes"] != settings.kafka_nodes:
        n, want = found["nodes"], settings.kafka_nodes
        raise ServiceError(
            f"{settings.home} holds a {n}-node Kafka cluster, but QUACKNET_KAFKA_NODES={want} asks for {want}: a KRaft "
            f"cluster's voters are fixed when it is formatted. Run with QUACKNET_KAFKA_NODES={n}, or point QUACKNET_HOME "
            f"at another state dir for the {want}-node stack, or delete this one's state with `make clean` (all local "
            "data: Kafka, ClickHouse, Airflow)")
    if found is not None and "logins" not in found and found["nodes"] != 1:
        raise ServiceError(
            f"{settings.home} holds a {found['nodes']}-node Kafka cluster formatted without logins (before the local "
            "cluster required SASL/SCRAM), which cannot be given them in place. Delete its state with `make clean` "
            "(all local data: Kafka, ClickHouse, Airflow), or point QUACKNET_HOME at a new state dir")
    if found is not None and "logins" not in found:
        return found  # a one-node broker of an earlier QuackNet: prepare gives it its logins
    if found is not None and found["logins"] != _logins_digest(settings):
        raise ServiceError(
            f"the Kafka logins in {settings.credentials_file} (KAFKA_ADMIN_USER/_PASSWORD, KAFKA_BROKER_PASSWORD, "
            "KAFKA_CONTROLLER_PASSWORD, or the QUACKNET_KAFKA_* overriding them) are not the ones the cluster in "
            f"{settings.home} was formatted with: restore them, or delete its state with `make clean`")
    return found


def _bindable(host: str, port: int) -> bool:
    """Whether a listener could bind the port now, with the address reuse a JVM's server socket has."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_bindable(settings: DevSettings, node: int, timeout_s: float = 75) -> None:
    """A client that keeps dialling a stopped node's port can be given that very port as its own local
    one when it lies in the kernel's ephemeral range (a TCP self-connect); the socket then holds the
    port, in TIME_WAIT for a minute after. Wait it out rather than let the broker die on bind."""
    ports = settings.kafka_node_ports(node)
    deadline = time.monotonic() + timeout_s
    while not all(_bindable(settings.kafka_host, p) for p in ports):
        if time.monotonic() > deadline:
            raise ServiceError(f"{node_name(node)}: port {'/'.join(map(str, ports))} stays taken by a socket this stack "
                               "did not listen on (a client's self-connect to a port in the ephemeral range, "
                               f"{'-'.join(_ephemeral_range())}? Use Kafka ports outside it)")
        time.sleep(0.2)


def _ephemeral_range() -> tuple[str, str]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return low, high
    except (OSError, ValueError):
        return "32768", "60999"


def prepare(settings: DevSettings, node: int = 1) -> None:
    """Install the jars, write the node's server.properties, and format its KRaft storage on first start
    (every node of a cluster with the same cluster id, kept in node 1's data dir)."""
    install_jars(settings)
    found = check_layout(settings)
    _wait_bindable(settings, node)
    if found is not None and "logins" not in found:
        found = add_logins(settings, found)
    props = _write_properties(settings, node)
    if _meta(settings, node):
        return
    if found is None:
        found = {"nodes": settings.kafka_nodes, "cluster_id": new_cluster_id(), "logins": _logins_digest(settings)}
        _write_private(_layout_path(settings), json.dumps(found))
    # The brokers' and the operators' SCRAM logins go into the metadata log from the start (KIP-900): the
    # brokers need theirs to talk to each other before anyone could create it. Salted here, so no
    # password shows on a command line; the services' logins are added once the cluster runs (secure).
    scram = [a for user, password in ((BROKER_USER, settings.kafka_broker_password.get_secret_value()),
                                      (settings.kafka_username, settings.kafka_password.get_secret_value()))
             for a in ("--add-scram", scram_credential(user, password))]
    cmd = [*_java_base(settings, TOOL_HEAP), TOOLS["kafka-storage"], "format", "-t", found["cluster_id"], "-c", str(props),
           *scram]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"kafka-storage format failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    log.info("kafka.formatted", node=node, log_dirs=str(node_dir(settings, node) / "logs"))


UNSECURED = ("sasl", "authorizer.class.name", "super.users", "allow.everyone.if.no.acl.found")


def unsecured_properties(settings: DevSettings) -> str:
    """Node 1's properties as an earlier QuackNet ran it: PLAINTEXT on loopback, no logins, no authorizer."""
    props = {k: v for k, v in (line.split("=", 1) for line in server_properties(settings, 1).splitlines())
             if not k.startswith(UNSECURED) and ".sasl." not in k}
    props["listener.security.protocol.map"] = f"{CLIENT}:PLAINTEXT,CONTROLLER:PLAINTEXT"
    return "".join(f"{k}={v}\n" for k, v in props.items())


@contextmanager
def unsecured_broker(settings: DevSettings) -> Iterator[str]:
    """Node 1 run for a moment as an earlier QuackNet ran it; yields its address once it answers, stops
    it on the way out (and waits for its ports to be free again)."""
    path = _write_private(node_dir(settings, 1) / "unsecured.properties", unsecured_properties(settings))
    address = f"{settings.kafka_host}:{settings.kafka_port}"
    log_file = settings.log_dir / "kafka.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    heap = [f"-Xms{settings.kafka_heap}", f"-Xmx{settings.kafka_heap}"]
    with open(log_file, "ab") as out:
        broker = subprocess.Popen([*_java_base(settings, heap), "kafka.Kafka", str(path)], stdout=out, stderr=subprocess.STDOUT)
    # node 1's pid file names it meanwhile: should this process die, `make stop` still finds the broker
    pid_file = settings.run_dir / "kafka.pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{broker.pid} {psutil.Process(broker.pid).create_time()}\n")
    try:
        deadline = time.monotonic() + settings.service_start_timeout_s
        while not _answers(address, broker):
            if time.monotonic() > deadline:
                raise ServiceError(f"kafka: the unsecured broker in {settings.home} did not start (log: {log_file})")
            time.sleep(0.5)
        yield address
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        path.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
    _wait_bindable(settings, 1)


def _plain_admin(address: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": address, "socket.timeout.ms": 2000, "logger": _quiet})


def _answers(address: str, broker: subprocess.Popen) -> bool:
    if broker.poll() is not None:
        raise ServiceError(f"kafka: the unsecured broker exited with {broker.returncode}")
    try:
        return 1 in _plain_admin(address).list_topics(timeout=2).brokers
    except KafkaException:
        return False


def _upsert_logins(address: str, logins: list[tuple[str, str]]) -> None:
    """SCRAM-SHA-512 logins through a client that lives only for the call (none dials the port after)."""
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
                                            password.encode()) for user, password in logins]
    admin = _plain_admin(address)
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)


def add_logins(settings: DevSettings, found: dict) -> dict:
    """A state dir of an earlier QuackNet holds a one-node broker formatted without logins: start it once
    as it ran then, give its metadata the brokers' and the operators' SCRAM logins (what `format
    --add-scram` gives a new cluster), stop it, record the layout. What it stores is kept; `secure` adds
    the services' logins and the ACLs once it runs secured."""
    log.info("kafka.adding_logins", home=str(settings.home))
    with unsecured_broker(settings) as address:
        _upsert_logins(address, [(BROKER_USER, settings.kafka_broker_password.get_secret_value()),
                                 (settings.kafka_username, settings.kafka_password.get_secret_value())])
    found = {**found, "logins": _logins_digest(settings)}
    _write_private(_layout_path(settings), json.dumps(found))
    log.info("kafka.logins_added", users=[BROKER_USER, settings.kafka_username])
    return found


def scram_credential(user: str, password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """A SCRAM-SHA-512 credential for `kafka-storage format --add-scram`, salted (RFC 5802's SaltedPassword)."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f'SCRAM-SHA-512=[name={user},iterations={iterations},salt="{base64.b64encode(salt).decode()}",'
            f'saltedpassword="{base64.b64encode(salted).decode()}"]')


def secure(settings: DevSettings) -> list[str]:
    """Once the cluster runs: the services' SCRAM logins (upserted: credentials.env is their source) and
    every ACL of the declaration (quacknet.acls) for the settings' topics and group, as the operators'
    principal. Idempotent; returns what it did."""
    client = kafka_clients.admin(settings, logger=_quiet)
    services = ("api", "loader", "airflow")
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
                                            password.encode())
               for user, password in (settings.kafka_login(s) for s in services)]
    for future in client.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)
    created = acls.apply(client, acls.grants(settings))
    principals = ", ".join(settings.kafka_login(s)[0] for s in services)
    return [f"kafka: SCRAM-SHA-512 logins for {principals}",
            f"kafka: {len(created)} ACL(s) created" if created else "kafka: ACLs as declared, nothing to change"]


@contextmanager
def granted(settings: DevSettings, services: tuple[str, ...] = ("api", "loader", "airflow")) -> Iterator[list]:
    """For a test's or a benchmark's own topics and group (the settings'): the ACLs the named services
    need there, created for the duration and deleted after (those that existed before are kept)."""
    client = kafka_clients.admin(settings, logger=_quiet)
    principals = {f"User:{settings.kafka_login(s)[0]}" for s in services}
    created = acls.apply(client, [g for g in acls.grants(settings) if g.principal in principals])
    try:
        yield created
    finally:
        if created:
            acls.revoke(client, created)


def client_properties(settings: DevSettings) -> Path:
    """The operators' client config for Kafka's own tools (`make kafka-tool`, tests): the admin's login."""
    lines = {"security.protocol": settings.kafka_security_protocol, "sasl.mechanism": settings.kafka_sasl_mechanism,
             "sasl.jaas.config": _jaas("scram.ScramLoginModule", username=settings.kafka_username,
                                       password=settings.kafka_password.get_secret_value())}
    if settings.kafka_tls:
        lines.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(settings.kafka_ssl_ca_location)})
    return _write_private(settings.data_dir("kafka-client") / "admin.properties",
                          "".join(f"{k}={v}\n" for k, v in lines.items()))


def command(settings: DevSettings, node: int = 1) -> list[str]:
    heap = [f"-Xms{settings.kafka_heap}", f"-Xmx{settings.kafka_heap}"]
    return [*_java_base(settings, heap), "-XX:+UseG1GC", "kafka.Kafka", str(_write_properties(settings, node))]


def tool_command(settings: DevSettings, tool: str, args: list[str]) -> list[str]:
    """A Kafka tool's command line, logged in as the operators' principal (``--command-config``, unless
    the arguments bring their own): the cluster lets no one in without a login."""
    if tool not in TOOLS:
        raise KeyError(f"unknown Kafka tool {tool!r}; known: {', '.join(sorted(TOOLS))}")
    login = [] if tool == "kafka-storage" or "--command-config" in args else ["--command-config", str(client_properties(settings))]
    return [*_java_base(settings, TOOL_HEAP), "-Dquacknet.kafka.loglevel=WARN", TOOLS[tool], *login, *args]


def run_tool(settings: DevSettings, tool: str, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one of Kafka's own command-line tools (an independent judge for tests and benchmarks)."""
    return run_tool_input(settings, tool, args, None, timeout)


def run_tool_input(settings: DevSettings, tool: str, args: list[str], stdin: str | None,
                   timeout: float = 120) -> subprocess.CompletedProcess:
    install_jars(settings)
    return subprocess.run(tool_command(settings, tool, args), input=stdin, capture_output=True, text=True, timeout=timeout)


_quiet = logging.getLogger("quacknet.kafka.health")
_quiet.setLevel(logging.CRITICAL)


def healthy(settings: DevSettings, node: int = 1) -> bool:
    """The node answers a metadata request on its own listener, and counts itself among the brokers
    (a KRaft broker serves clients once the quorum has unfenced it)."""
    address = f"{settings.kafka_host}:{settings.kafka_node_ports(node)[0]}"
    admin = kafka_clients.admin(settings.model_copy(update={"kafka_bootstrap_servers": address}), logger=_quiet,
                                **{"socket.timeout.ms": 2000})
    metadata = admin.list_topics(timeout=2)
    return node in metadata.brokers
