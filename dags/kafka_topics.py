"""Topic lifecycle: reconcile the topics declared in quacknet/topics.py."""

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
    description="Create and reconcile QuackNet's Kafka topics (idempotent)",
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
        from quacknet.airflow import tasks

        return tasks.reconcile_topics(params["dry_run"])

    reconcile()


kafka_topics()
