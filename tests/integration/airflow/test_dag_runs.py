"""dag.test() of each DAG against the real broker and the real ClickHouse engine."""

from __future__ import annotations

import datetime as dt
import time

from confluent_kafka import TopicPartition

from quacknet import kafka as qkafka
from quacknet.settings import HOUR_MS
from quacknet.warehouse.migrations import migrate
from tests.support.airflow import load_dagbag
from tests.support.kafka import committed, end_offsets, produce
from tests.support.loader import count
from tests.support.waiting import wait_for


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
    conf = {"topic": lsettings.scans_topic, "start_time": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()}
    dry = _dag(airflow_db, "replay_to_clickhouse").test(run_conf={**conf, "dry_run": True})
    assert dry.state == "success" and count(ch, lsettings) == 0
    for _ in range(2):
        run = _dag(airflow_db, "replay_to_clickhouse").test(run_conf=conf)
        assert run.state == "success"
        assert count(ch, lsettings) == len(ids) == 800


def test_replay_dag_fails_readably_and_at_once_on_a_bad_form(airflow_db, connections, lsettings):
    """Invalid parameters are not an outage: the task fails on its first try, not after a retry."""
    connections(lsettings)
    started = time.monotonic()
    for conf in ({"topic": lsettings.scans_topic, "offsets": {"0": [5]}}, {"topic": lsettings.scans_topic}):
        run = _dag(airflow_db, "replay_to_clickhouse").test(run_conf=conf)
        assert run.state == "failed"
        [plan] = [ti for ti in run.get_task_instances() if ti.task_id == "plan"]
        assert (plan.state, plan.try_number) == ("failed", 1)
    assert time.monotonic() - started < 30  # the DAG's retry_delay: nothing waited for a retry


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


def test_retention_audit_dag_passes_on_a_healthy_cluster_and_stores_findings(airflow_db, connections, stack, admin, ch,
                                                                            database, monkeypatch):
    from quacknet import topics

    topics.reconcile(admin, topics.specs(stack))
    monkeypatch.setenv("QUACKNET_AUDIT_MIN_FREE_RATIO", "0.01")  # the verdict on the cluster, not on this box's disk
    connections(stack.model_copy(update={"clickhouse_database": database}))
    migrate(ch, database)  # make run's step: the DAG only checks the schema version
    nobody = f"nobody-{database}"
    run = _dag(airflow_db, "retention_audit").test(run_conf={"groups": [nobody], "min_hours_left": 1.0, "loader_group": nobody})
    assert run.state == "success"
    stored = dict(ch.query(f"SELECT check, countIf(ok) FROM {database}.audit_findings GROUP BY check").result_rows)
    assert stored["retention"] == 4 and stored["completeness"] == 6 and stored["lag_horizon"] == 6
    assert stored["disk_use"] >= 1 and stored["disk_free"] >= 1 and stored["disk_worst_case"] == 1
    assert ch.command(f"SELECT countIf(NOT ok) FROM {database}.audit_findings") == 0


def test_retention_audit_dag_fails_naming_the_violation_and_still_stores_every_finding(airflow_db, connections, stack,
                                                                                        admin, ch, database, monkeypatch):
    from quacknet import topics

    topics.reconcile(admin, topics.specs(stack))
    monkeypatch.setenv("QUACKNET_AUDIT_DISK_BUDGET_BYTES", "1024")  # the owned topics may grow far beyond 1 KiB
    connections(stack.model_copy(update={"clickhouse_database": database}))
    migrate(ch, database)  # make run's step: the DAG only checks the schema version
    nobody = f"nobody-{database}"
    run = _dag(airflow_db, "retention_audit").test(run_conf={"groups": [nobody], "loader_group": nobody})
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["report"] == "failed" and states["completeness"] == "success"
    bad = ch.query(f"SELECT check, message FROM {database}.audit_findings WHERE NOT ok").result_rows
    assert ("disk_worst_case", "owned topics may grow to 5.06 GiB under their retention.bytes (budget 1.00 KiB)") in bad
    assert ch.command(f"SELECT countIf(ok) FROM {database}.audit_findings WHERE check = 'retention'") == 4


def test_retention_audit_dag_flags_a_wrong_retention_and_a_group_near_the_horizon(airflow_db, connections, stack, admin,
                                                                                   ch, database, unique_name, monkeypatch):
    import time

    from confluent_kafka.admin import NewTopic

    scans, dlq = f"{unique_name}.scans", f"{unique_name}.dlq"
    hour_ms = HOUR_MS
    admin.create_topics([NewTopic(scans, 1, 1, config={"retention.ms": str(2 * hour_ms)}),  # policy: 168 h
                         NewTopic(dlq, 1, 1)])[scans].result(timeout=30)
    producer = qkafka.producer(stack)
    producer.produce(scans, key=b"k", value=b"{}", timestamp=int(time.time() * 1000) - int(1.9 * hour_ms))
    assert producer.flush(10) == 0
    monkeypatch.setenv("QUACKNET_SCANS_TOPIC", scans)  # the DAG's topic specs follow the settings
    monkeypatch.setenv("QUACKNET_DLQ_TOPIC", dlq)
    monkeypatch.setenv("QUACKNET_AUDIT_MIN_FREE_RATIO", "0.01")
    connections(stack.model_copy(update={"clickhouse_database": database}))
    migrate(ch, database)  # make run's step: the DAG only checks the schema version
    late = f"late-{unique_name}"
    try:
        run = _dag(airflow_db, "retention_audit").test(
            run_conf={"groups": [late], "min_hours_left": 1.0, "loader_group": late})
        assert run.state == "failed"
        bad = dict(ch.query(f"SELECT check, message FROM {database}.audit_findings WHERE NOT ok").result_rows)
        assert bad["retention"] == f"{scans}: retention.ms is {2 * hour_ms}, policy says {168 * hour_ms}"
        assert bad["lag_horizon"].startswith(f"{scans}[0]: group {late} lags 1 messages; its oldest unread message expires in 0.")
        assert set(bad) == {"retention", "lag_horizon"}
    finally:
        admin.delete_topics([scans, dlq])


def test_a_check_that_cannot_run_fails_the_report_which_still_stores_the_others(airflow_db, connections, stack, admin,
                                                                                ch, database, monkeypatch):
    from quacknet import topics
    from quacknet.ops import audit

    def unreachable(settings):
        raise ConnectionError("DescribeLogDirs: no broker answered")

    topics.reconcile(admin, topics.specs(stack))
    monkeypatch.setattr(audit, "log_dirs", unreachable)  # dag.test runs the tasks in this process
    connections(stack.model_copy(update={"clickhouse_database": database}))
    migrate(ch, database)  # make run's step: the DAG only checks the schema version
    nobody = f"nobody-{database}"
    dag = _dag(airflow_db, "retention_audit")
    dag.get_task("disk_use").retries = 0  # not the 2-minute retry a real outage deserves
    run = dag.test(run_conf={"groups": [nobody], "loader_group": nobody})
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["disk_use"] == "failed" and states["report"] == "failed" and states["retention_settings"] == "success"
    stored = dict(ch.query(f"SELECT check, count() FROM {database}.audit_findings GROUP BY check").result_rows)
    assert stored.get("retention") == 4 and stored.get("completeness") == 6 and "disk_use" not in stored
