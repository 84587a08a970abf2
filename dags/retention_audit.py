"""Retention audit, hourly: retention settings, disk use, the cluster's health, lag against the
retention horizon and Kafka-vs-ClickHouse completeness (logic in quacknet/ops/audit.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from quacknet.airflow.connections import defaults

DOC = """
### Retention audit
Hourly. Five checks, each its own task, then `report`:
- **retention_settings**: each owned topic's effective `retention.ms`/`retention.bytes` against the
  policy in `quacknet/topics.py`;
- **disk_use**: each broker log dir's size (DescribeLogDirs) against `QUACKNET_AUDIT_DISK_BUDGET_BYTES`,
  the free share of its volume, and what the owned topics may grow to under their `retention.bytes`;
- **cluster_health**: every registered broker unfenced; no partition of the owned topics or
  `__consumer_offsets` offline, under-replicated or with an ISR below its `min.insync.replicas`; the
  controller quorum has a leader and no voter lags it longer than `QUACKNET_AUDIT_QUORUM_MAX_LAG_S`;
- **lag_horizon**: how long until each consumer group's oldest unread message is deleted by retention
  (less than `min_hours_left` is a data-loss risk);
- **completeness**: per partition, offsets the loader committed past that are in Kafka but not in
  ClickHouse (load ledger and row lineage).

`report` stores every finding in `quacknet.audit_findings` (the QuackNet plugin shows the latest run)
and fails with a message naming topic, partition and numbers if any check found a violation or
could not run. Logic: `quacknet/ops/audit.py`.
"""

settings = defaults()


@dag(
    dag_id="retention_audit",
    description="Hourly: retention settings, disk use, cluster health, lag vs retention, Kafka-vs-ClickHouse completeness",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    # Unpaused once the topics exist (make run and compose's init do it after kafka_topics): a first
    # scheduled run before then could only report the topics missing.
    is_paused_upon_creation=True,
    tags=["quacknet", "kafka", "audit"],
    doc_md=DOC,
    default_args={"owner": "quacknet", "retries": 1, "retry_delay": pendulum.duration(minutes=2)},
    params={
        "groups": Param([settings.loader_group], type="array", items={"type": "string"}, title="Consumer groups",
                        description="Groups whose lag is measured against the retention horizon"),
        "min_hours_left": Param(settings.audit_min_hours_left, type="number", minimum=0, title="Minimum hours left",
                                description="Less time than this before unread data expires is a violation"),
        "loader_group": Param(settings.loader_group, type="string", title="Loader group",
                              description="Completeness covers the offsets this group has committed"),
    },
)
def retention_audit():
    @task
    def retention_settings() -> list[dict]:
        from quacknet.airflow import tasks

        return tasks.audit_retention()

    @task
    def disk_use() -> list[dict]:
        from quacknet.airflow import tasks

        return tasks.audit_disk()

    @task
    def cluster_health() -> list[dict]:
        from quacknet.airflow import tasks

        return tasks.audit_cluster()

    @task
    def lag_horizon(params=None) -> list[dict]:
        from quacknet.airflow import tasks

        return tasks.audit_lag_horizon(params)

    @task
    def completeness(params=None) -> list[dict]:
        from quacknet.airflow import tasks

        return tasks.audit_completeness(params)

    @task(trigger_rule="all_done", retries=0)
    def report(results: list) -> list[dict]:
        from quacknet.airflow import tasks

        return tasks.audit_report(results)

    report([retention_settings(), disk_use(), cluster_health(), lag_horizon(), completeness()])


retention_audit()
