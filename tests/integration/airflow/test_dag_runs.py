"""dag.test() of each DAG against the real broker and the real ClickHouse engine."""

from __future__ import annotations

import datetime as dt

from confluent_kafka import TopicPartition

from quacknet import kafka as qkafka
from tests.integration.airflow.conftest import load_dagbag
from tests.integration.helpers import committed, count, end_offsets, produce, wait_for


def _dag(airflow_db, dag_id: str):
    return load_dagbag().get_dag(dag_id)


def test_kafka_topics_dag_reconciles_the_declared_topics(airflow_db, connections, stack, admin):
    run = _dag(airflow_db, "kafka_topics").test(run_conf={"dry_run": False})
    assert run.state == "success"
    # a created topic reaches every broker's metadata cache a moment after the controller accepted it
    wait_for(lambda: {stack.scans_topic, stack.dlq_topic} <= set(admin.list_topics(timeout=10).topics), 20, "the topics")
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[stack.scans_topic].partitions) == 6 and len(topics[stack.dlq_topic].partitions) == 3
    again = _dag(airflow_db, "kafka_topics").test(run_conf={"dry_run": True})
    assert again.state == "success"


def test_replay_dag_copies_a_range_once_however_often_it_runs(airflow_db, connections, lsettings, ch):
    ids = produce(lsettings, 800)
    connections(lsettings)
    conf = {"topic": lsettings.scans_topic, "start_time": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)).isoformat()}
    dry = _dag(airflow_db, "replay_to_clickhouse").test(run_conf={**conf, "dry_run": True})
    assert dry.state == "success" and count(ch, lsettings) == 0
    for _ in range(2):
        run = _dag(airflow_db, "replay_to_clickhouse").test(run_conf=conf)
        assert run.state == "success"
        assert count(ch, lsettings) == len(ids) == 800


def test_replay_dag_fails_readably_on_a_bad_form(airflow_db, connections, lsettings):
    connections(lsettings)
    run = _dag(airflow_db, "replay_to_clickhouse").test(run_conf={"topic": lsettings.scans_topic, "offsets": {"0": [5]}})
    assert run.state == "failed"


def test_offset_reset_dag_dry_runs_by_default_and_then_resets(airflow_db, connections, lsettings):
    produce(lsettings, 300)
    connections(lsettings)
    group = lsettings.loader_group
    consumer = qkafka.consumer(lsettings, group)
    consumer.commit(offsets=[TopicPartition(lsettings.scans_topic, p, 0) for p in range(6)], asynchronous=False)
    consumer.close()
    conf = {"group": group, "topic": lsettings.scans_topic, "kind": "latest"}
    assert _dag(airflow_db, "offset_reset").test(run_conf=conf).state == "success"
    assert set(committed(lsettings, group).values()) == {0}  # the dry run changed nothing
    assert _dag(airflow_db, "offset_reset").test(run_conf={**conf, "dry_run": False}).state == "success"
    assert committed(lsettings, group) == end_offsets(lsettings)


def test_retention_audit_dag_passes_on_a_healthy_cluster_and_stores_findings(airflow_db, connections, stack, admin, ch, database):
    from quacknet import topics

    topics.reconcile(admin, topics.specs(stack))
    connections(stack.model_copy(update={"clickhouse_database": database}))
    run = _dag(airflow_db, "retention_audit").test(run_conf={"groups": [f"nobody-{database}"], "min_hours_left": 1.0})
    assert run.state == "success"
    assert ch.command(f"SELECT count() FROM {database}.audit_findings WHERE check = 'retention' AND ok") == 4
