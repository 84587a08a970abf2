"""Topic lifecycle: reconcile the topics declared in quacknet/topics.py (wiring only)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

DOC = """
### Kafka topics
Creates missing topics, grows partitions when the spec asks (never shrinks: fails clearly),
and brings drifted configs back with incremental alter configs. Every change is logged and
returned. Specs live in one place: `quacknet/topics.py`. Run by `make run`; safe to re-run.
"""


@dag(
    dag_id="kafka_topics",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["quacknet", "kafka", "operations"],
    doc_md=DOC,
    default_args={"owner": "quacknet", "retries": 2, "retry_delay": pendulum.duration(seconds=20)},
    params={"dry_run": Param(False, type="boolean", title="Dry run", description="Report changes without making them")},
)
def kafka_topics():
    @task
    def reconcile(params=None) -> list[dict]:
        from quacknet import topics
        from quacknet.connections import kafka_admin, settings_from_airflow

        changes = topics.reconcile(kafka_admin(), topics.specs(settings_from_airflow()), dry_run=params["dry_run"])
        return [{"topic": c.topic, "action": c.action, "detail": c.detail} for c in changes]

    reconcile()


kafka_topics()
