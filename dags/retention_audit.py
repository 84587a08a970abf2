"""Retention audit, hourly: retention settings against the policy and consumer lag against the
retention horizon (wiring only; logic in quacknet/audit.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

DOC = """
### Retention audit
Hourly. Checks each owned topic's effective `retention.ms`/`retention.bytes` against the policy in
`quacknet/topics.py`, and how long until each consumer group's oldest unread message is deleted by
retention (less than `min_hours_left` is a data-loss risk). Findings go to
`quacknet.audit_findings`; any violation fails the task with a message naming topic, partition and
numbers. Logic: `quacknet/audit.py`.
"""


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
    },
)
def retention_audit():
    @task
    def audit(params=None) -> list[dict]:
        import datetime as dt

        from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook

        from quacknet import audit, topics, warehouse
        from quacknet.connections import KAFKA_CONN_ID, settings_from_airflow
        from quacknet.warehouse.migrations import migrate

        settings = settings_from_airflow()
        specs = topics.specs(settings)
        current = topics.describe(KafkaAdminClientHook(kafka_config_id=KAFKA_CONN_ID).get_conn, [s.name for s in specs])
        findings = audit.retention_findings(specs, current)
        scans = current.get(settings.scans_topic)
        retention_ms = int(scans.configs["retention.ms"]) if scans else 168 * 3_600_000
        for group in params["groups"]:
            findings += audit.lag_horizon_findings(settings, group, settings.scans_topic, retention_ms, params["min_hours_left"])
        client = warehouse.client(settings)
        migrate(client, settings.clickhouse_database)
        audit.store(client, settings.clickhouse_database, dt.datetime.now(dt.timezone.utc), findings)
        for f in findings:
            print(("OK  " if f.ok else "FAIL") + " " + f.message)
        problem = audit.violations_message(findings)
        if problem:
            raise ValueError(problem)
        return audit.as_dicts(findings)

    audit()


retention_audit()
