"""Retention audit, hourly: retention settings, disk use, lag against the retention horizon and
Kafka-vs-ClickHouse completeness (wiring only; logic in quacknet/audit.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

DOC = """
### Retention audit
Hourly. Four checks, each its own task, then `report`:
- **retention_settings**: each owned topic's effective `retention.ms`/`retention.bytes` against the
  policy in `quacknet/topics.py`;
- **disk_use**: each broker log dir's size (DescribeLogDirs) against `QUACKNET_AUDIT_DISK_BUDGET_BYTES`,
  the free share of its volume, and what the owned topics may grow to under their `retention.bytes`;
- **lag_horizon**: how long until each consumer group's oldest unread message is deleted by retention
  (less than `min_hours_left` is a data-loss risk);
- **completeness**: per partition, offsets the loader committed past that are in Kafka but not in
  ClickHouse (load ledger and row lineage).

`report` stores every finding in `quacknet.audit_findings` (the QuackNet plugin shows the latest run)
and fails with a message naming topic, partition and numbers if any check found a violation or
could not run. Logic: `quacknet/audit.py`.
"""


def _settings():
    from quacknet.connections import settings_from_airflow

    return settings_from_airflow()


@dag(
    dag_id="retention_audit",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["quacknet", "kafka", "audit"],
    doc_md=DOC,
    default_args={"owner": "quacknet", "retries": 1, "retry_delay": pendulum.duration(minutes=2)},
    params={
        "groups": Param(["clickhouse-loader"], type="array", items={"type": "string"}, title="Consumer groups",
                        description="Groups whose lag is measured against the retention horizon"),
        "min_hours_left": Param(24.0, type="number", minimum=0, title="Minimum hours left",
                                description="Less time than this before unread data expires is a violation"),
        "loader_group": Param("clickhouse-loader", type="string", title="Loader group",
                              description="Completeness covers the offsets this group has committed"),
    },
)
def retention_audit():
    @task
    def retention_settings() -> list[dict]:
        from quacknet import audit, topics
        from quacknet.connections import kafka_admin

        specs = topics.specs(_settings())
        current = topics.describe(kafka_admin(), [s.name for s in specs])
        return audit.as_dicts(audit.retention_findings(specs, current))

    @task
    def disk_use() -> list[dict]:
        from quacknet import audit, topics
        from quacknet.connections import kafka_admin

        settings = _settings()
        current = topics.describe(kafka_admin(), [s.name for s in topics.specs(settings)])
        findings = audit.disk_findings(audit.log_dirs(settings), settings.audit_disk_budget_bytes,
                                       settings.audit_min_free_ratio)
        return audit.as_dicts(findings + audit.worst_case_findings(current, settings.audit_disk_budget_bytes))

    @task
    def lag_horizon(params=None) -> list[dict]:
        from quacknet import audit, topics
        from quacknet.connections import kafka_admin

        settings = _settings()
        [spec] = [s for s in topics.specs(settings) if s.name == settings.scans_topic]
        scans = topics.describe(kafka_admin(), [spec.name]).get(spec.name)
        retention_ms = int((scans or spec).configs["retention.ms"])  # the topic's, else the declared policy
        findings = []
        for group in params["groups"]:
            findings += audit.lag_horizon_findings(settings, group, settings.scans_topic, retention_ms,
                                                   params["min_hours_left"])
        return audit.as_dicts(findings)

    @task
    def completeness(params=None) -> list[dict]:
        from quacknet import audit, warehouse
        from quacknet.warehouse.migrations import migrate

        settings = _settings()
        client = warehouse.client(settings)
        migrate(client, settings.clickhouse_database)
        findings = audit.completeness_findings(settings, client, settings.clickhouse_database,
                                               params["loader_group"], settings.scans_topic)
        return audit.as_dicts(findings)

    @task(trigger_rule="all_done", retries=0)
    def report(results: list) -> list[dict]:
        import datetime as dt

        from quacknet import audit, warehouse
        from quacknet.warehouse.migrations import migrate

        settings = _settings()
        findings = audit.from_dicts([f for result in results if result for f in result])
        client = warehouse.client(settings)
        migrate(client, settings.clickhouse_database)
        audit.store(client, settings.clickhouse_database, dt.datetime.now(dt.timezone.utc), findings)
        for f in findings:
            print(("OK  " if f.ok else "FAIL") + f" [{f.check}] {f.message}")
        problem = audit.violations_message(findings, checks_not_run=sum(1 for result in results if result is None))
        if problem:
            raise ValueError(problem)
        return audit.as_dicts(findings)

    report([retention_settings(), disk_use(), lag_horizon(), completeness()])


retention_audit()
