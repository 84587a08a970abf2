"""A three-node KRaft cluster (the local stack's, on ports of its own) losing a broker, then its active
controller, under load through the real API with the real loader running: leadership moves, the API
keeps answering (202, or 503 with Retry-After), the loader keeps committing, the node rejoins and every
partition is back to three replicas in sync; then the exact audit, nothing lost and nothing extra.

One stack serves the module (its start is the expensive part); the topics on it are made by the
kafka_topics DAG (dag.test, in this process, through the Kafka connection with Airflow's principal), as
`make run` makes them. The API and the loader run as their own principals, as in `make run`."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

import pytest
from confluent_kafka.admin import NewTopic

from devtools import credentials, soak
from devtools import kafka as devkafka
from devtools.cli import ensure_services, stop_services
from devtools.services import API, CLICKHOUSE, LOADER, kafka_node, kafka_nodes
from devtools.settings import DevSettings
from devtools.supervisor import Supervisor
from quacknet import kafka as qkafka
from quacknet.ops import audit
from tests.support import cluster as cl
from tests.support.airflow import connection_env, load_dagbag
from tests.support.load import ApiLoad
from tests.support.stack import own_ports
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, airflow_db):
    settings = own_ports(DevSettings(), tmp_path_factory.mktemp("cluster") / "qn", kafka_nodes=3,
                         api_spool_resend_interval_s=0.5, loader_retry_max_s=2.0, loader_batch_seconds=0.5)
    services = [*kafka_nodes(settings), CLICKHOUSE, API, LOADER]
    started = time.monotonic()
    try:
        ensure_services(settings, services[:4])
        kafka_s = time.monotonic() - started
        with pytest.MonkeyPatch.context() as mp:  # the DAG's task runs as Airflow's own Kafka principal
            for name, value in connection_env(settings.as_kafka_service("airflow")).items():
                mp.setenv(name, value)
            run = load_dagbag().get_dag("kafka_topics").test(run_conf={"dry_run": False})
            assert run.state == "success"
        wait_for(lambda: cl.have_topics(settings, [settings.scans_topic, settings.dlq_topic]), 30, "the topics' metadata")
        ensure_services(settings, services[4:])
        print(f"\nthree-node stack: Kafka nodes healthy {kafka_s:.1f}s after launch; whole stack {time.monotonic() - started:.1f}s")
        yield settings
    finally:
        stop_services(settings, services, echo=lambda line: None)


def test_three_voters_and_the_declared_topics_with_three_replicas_two_in_sync(cluster):
    settings = cluster  # a fresh cluster: its topics are the ones the kafka_topics DAG created
    quorum = devkafka.run_tool(settings, "kafka-metadata-quorum",
                               ["--bootstrap-server", settings.kafka_bootstrap_servers, "describe", "--status"])
    assert quorum.returncode == 0, quorum.stderr
    voters = re.search(r"CurrentVoters:\s+(\[.*\])", quorum.stdout).group(1)
    assert sorted(int(i) for i in re.findall(r'"id":\s*(\d+)', voters)) == [1, 2, 3]
    assert re.search(r"LeaderId:\s+[123]\b", quorum.stdout)
    for topic, partitions in ((settings.scans_topic, 6), (settings.dlq_topic, 3)):
        described = devkafka.run_tool(settings, "kafka-topics",
                                      ["--bootstrap-server", settings.kafka_bootstrap_servers, "--describe", "--topic", topic])
        assert described.returncode == 0, described.stderr
        head, *rows = [line for line in described.stdout.splitlines() if line.strip()]
        assert re.search(rf"PartitionCount:\s+{partitions}\s+ReplicationFactor:\s+3\b", head), head
        assert "min.insync.replicas=2" in head, head
        assert len(rows) == partitions
        for row in rows:
            replicas = re.search(r"Replicas:\s+([\d,]+)", row).group(1).split(",")
            isr = re.search(r"Isr:\s+([\d,]+)", row).group(1).split(",")
            assert sorted(replicas) == sorted(isr) == ["1", "2", "3"], row
    findings = audit.check_cluster(settings, qkafka.admin(settings))
    assert [f.message for f in findings if not f.ok] == []
    assert {"brokers", "offline", "under_replicated", "min_isr", "quorum_leader", "quorum_lag"} <= {f.check for f in findings}


def _described(settings, topic: str) -> tuple[str, list[str]]:
    done = devkafka.run_tool(settings, "kafka-topics",
                             ["--bootstrap-server", settings.kafka_bootstrap_servers, "--describe", "--topic", topic])
    assert done.returncode == 0, done.stderr
    head, *rows = [line for line in done.stdout.splitlines() if line.strip()]
    return head, rows


def test_the_kafka_topics_dag_raises_a_topic_with_one_copy_to_three(cluster, monkeypatch):
    """A topic made before the cluster had three brokers: the DAG reports its replication and reassigns
    its partitions (as Airflow's principal: ALTER on the cluster), then raises min.insync.replicas."""
    settings = cluster
    name = f"t.one.copy.{uuid.uuid4().hex[:8]}"
    admin = qkafka.admin(settings)
    admin.create_topics([NewTopic(name, 3, 1)])[name].result(timeout=30)
    wait_for(lambda: cl.have_topics(settings, [name]), 30, "the topic")
    mine = settings.model_copy(update={"scans_topic": name, "scans_partitions": 3})
    try:
        with devkafka.granted(mine, ("airflow",)):
            for key, value in connection_env(settings.as_kafka_service("airflow")).items():
                monkeypatch.setenv(key, value)
            monkeypatch.setenv("QUACKNET_SCANS_TOPIC", name)
            monkeypatch.setenv("QUACKNET_SCANS_PARTITIONS", "3")
            assert load_dagbag().get_dag("kafka_topics").test(run_conf={"dry_run": False}).state == "success"
        wait_for(lambda: _all_in_sync(settings, [name]), 60, "three replicas in sync")
        head, rows = _described(settings, name)
        assert re.search(r"ReplicationFactor:\s+3\b", head) and "min.insync.replicas=2" in head, head
        assert all(sorted(re.search(r"Isr:\s+([\d,]+)", row).group(1).split(",")) == ["1", "2", "3"] for row in rows), rows
    finally:
        admin.delete_topics([name])


@dataclass
class Loss:
    victim: int
    elect_s: float  # kill -> every partition of the scans topic led by a live broker
    quorum_s: float | None  # kill -> the quorum has a leader other than the victim (controller loss)
    committed_while_down: int
    rejoin_s: float  # restart -> the node healthy
    in_sync_s: float  # restart -> every replica of the owned topics and __consumer_offsets in sync
    statuses: dict
    accepted: int
    stored: int


def _lose(settings: DevSettings, victim_of, what: str) -> Loss:
    sup = Supervisor(settings)
    key = credentials.read(settings)["QUACKNET_API_KEY"]
    prefix = f"loss-{uuid.uuid4().hex[:8]}"
    topics = [settings.scans_topic, settings.dlq_topic, "__consumer_offsets"]
    load = ApiLoad(settings.api_host, settings.api_port, key, prefix, rate=200).start()
    try:
        base = cl.committed_total(settings, settings.loader_group, settings.scans_topic, settings.scans_partitions)
        wait_for(lambda: cl.committed_total(settings, settings.loader_group, settings.scans_topic,
                                            settings.scans_partitions) > base + 200, 60, "the loader committing the load")
        victim = victim_of(settings)
        node = kafka_node(victim)
        survivors = settings.model_copy(update={"kafka_bootstrap_servers": ",".join(
            f"127.0.0.1:{settings.kafka_node_ports(n)[0]}" for n in (1, 2, 3) if n != victim)})
        killed = time.monotonic()
        sup.stop(node, kill=True)  # kill -9 of the node's process group
        quorum_s = None
        if what == "controller":
            wait_for(lambda: _quorum_leader(survivors) not in (None, -1, victim), 60, "a new quorum leader")
            quorum_s = time.monotonic() - killed
        wait_for(lambda: _led_by_live(survivors, settings.scans_topic, victim), 90, "new partition leaders")
        elect_s = time.monotonic() - killed
        # the audit names the fenced broker, its partitions' missing replica and the voter that stopped
        # following the quorum's leader; nothing is offline and every ISR still meets min.insync.replicas
        wait_for(lambda: {"brokers", "under_replicated", "quorum_lag"} <= _failing(survivors), 40,
                 "the cluster audit naming the lost node")
        assert not {"offline", "min_isr", "quorum_leader"} & _failing(survivors)
        during = cl.committed_total(survivors, settings.loader_group, settings.scans_topic, settings.scans_partitions)
        wait_for(lambda: cl.committed_total(survivors, settings.loader_group, settings.scans_topic,
                                            settings.scans_partitions) > during + 200, 60,
                 "the loader committing with a broker down")
        committed_while_down = cl.committed_total(survivors, settings.loader_group, settings.scans_topic,
                                                  settings.scans_partitions) - during
        restarted = time.monotonic()
        sup.start(node)
        rejoin_s = time.monotonic() - restarted
        wait_for(lambda: _all_in_sync(settings, topics), 120, "every replica back in sync")
        in_sync_s = time.monotonic() - restarted
        statuses = dict(load.statuses(since=killed))
        time.sleep(3)  # a little load on the healed cluster
    finally:
        load.stop()
    assert load.refusals_without_retry_after() == [], load.refusals_without_retry_after()[:10]
    soak.drain(settings, 180)
    report = soak.Report()
    soak.audit(settings, prefix, load.accepted, report)
    assert (report.missing, report.duplicated, report.unexpected) == (0, 0, 0), report.table()
    assert report.stored == len(load.accepted) > 0
    assert [f.message for f in audit.check_cluster(settings, qkafka.admin(settings)) if not f.ok] == []
    return Loss(victim, elect_s, quorum_s, committed_while_down, rejoin_s, in_sync_s, statuses, len(load.accepted),
                report.stored)


def _all_in_sync(settings, topics: list[str]) -> bool:
    try:
        return all(isr == replicas == 3 for isr, replicas in cl.in_sync(settings, topics).values())
    except Exception:
        return False


def _failing(settings) -> set[str]:
    return {f.check for f in audit.check_cluster(settings, qkafka.admin(settings)) if not f.ok}


def _quorum_leader(settings) -> int | None:
    try:
        return cl.quorum(settings)[0]
    except Exception:
        return None  # no leader yet, or the request went to the dead node


def _led_by_live(settings, topic: str, victim: int) -> bool:
    try:
        led = cl.leaders(settings, topic)
    except Exception:
        return False
    return all(leader not in (-1, victim) for leader in led.values())


def test_losing_the_broker_that_leads_most_partitions_loses_nothing(cluster):
    settings = cluster
    loss = _lose(settings, lambda s: cl.most_leading(s, s.scans_topic), "broker")
    print(f"\nbroker loss: {loss}")
    assert loss.statuses.get(202, 0) > 0


def test_losing_the_active_controller_loses_nothing(cluster):
    settings = cluster
    loss = _lose(settings, lambda s: cl.quorum(s)[0], "controller")
    print(f"\ncontroller loss: {loss}")
    assert loss.quorum_s is not None and loss.statuses.get(202, 0) > 0
