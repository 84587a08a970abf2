"""Replay a time or offset range of the scans topic into ClickHouse."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from quacknet.airflow.connections import UTC_TIME_HINT, UTC_TIME_PATTERN, defaults

DOC = """
### Replay to ClickHouse
Trigger by hand with the form. Give **either** a time range (`start_time`, `end_time`, typed in UTC
such as `2026-11-30T21:00:00Z`; broker time, since the topic uses LogAppendTime) **or** explicit
per-partition offsets (`{"0": [start, end], ...}`); both, or neither, fail at once with the reason.
The `plan` task logs and returns the window as interpreted (UTC), offsets and messages per
partition, and totals; `copy` writes the ranges through the loader's own pipeline, so replaying
twice changes nothing and it is safe beside the live loader. Its summary adds up: read = inserted
+ already present + duplicates within batches + dead-lettered. A range whose start retention
already deleted fails with the partition and offsets named. Logic: `quacknet/replay.py`.
"""

settings = defaults()


@dag(
    dag_id="replay_to_clickhouse",
    description="Copy a time or offset range of the scans topic into ClickHouse, exactly once",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["quacknet", "kafka", "clickhouse", "operations"],
    doc_md=DOC,
    default_args={"owner": "quacknet", "retries": 1, "retry_delay": pendulum.duration(seconds=30)},
    params={
        "topic": Param(settings.scans_topic, type="string", title="Topic", minLength=1, section="Source"),
        "partitions": Param(None, type=["null", "array"], items={"type": "integer", "minimum": 0}, title="Partitions",
                            description="Empty: all partitions", section="Source"),
        "start_time": Param(None, type=["null", "string"], pattern=UTC_TIME_PATTERN, title="From (UTC)",
                            description=f"Inclusive, broker time. {UTC_TIME_HINT}", section="Time range (UTC)"),
        "end_time": Param(None, type=["null", "string"], pattern=UTC_TIME_PATTERN, title="To (UTC)",
                          description=f"Exclusive; empty: up to the end of each partition. {UTC_TIME_HINT}",
                          section="Time range (UTC)"),
        "offsets": Param(None, type=["null", "object"], title="Explicit offsets",
                         description='Instead of a time range: per partition {"0": [start, end], ...}',
                         section="Or explicit offsets"),
        "dry_run": Param(False, type=["null", "boolean"], title="Dry run", description="Plan only; copy nothing",
                         section="Run"),
    },
)
def replay_to_clickhouse():
    @task
    def plan(params=None) -> list[dict]:
        from quacknet.airflow import tasks

        return tasks.replay_plan(params)

    @task
    def copy(ranges: list[dict], params=None, run_id=None) -> dict:
        from quacknet.airflow import tasks

        return tasks.replay_copy(ranges, params, run_id)

    copy(plan())


replay_to_clickhouse()
