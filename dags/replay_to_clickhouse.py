"""Replay a time or offset range of the scans topic into ClickHouse."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from quacknet.airflow.connections import defaults

DOC = """
### Replay to ClickHouse
Trigger by hand with the form. Give **either** a time range (`start_time`, `end_time`, UTC; broker
time, since the topic uses LogAppendTime) **or** explicit per-partition offsets
(`{"0": [start, end], ...}`). The plan (messages per partition) is logged and returned by the
`plan` task; `copy` writes the ranges through the loader's own pipeline, so replaying twice
changes nothing and it is safe beside the live loader. A range whose start retention already
deleted fails with the partition and offsets named. Logic: `quacknet/replay.py`.
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
        "topic": Param(settings.scans_topic, type="string", title="Topic", minLength=1),
        "start_time": Param(None, type=["null", "string"], format="date-time", title="From (UTC)",
                            description="Inclusive; leave empty to replay explicit offsets"),
        "end_time": Param(None, type=["null", "string"], format="date-time", title="To (UTC)",
                          description="Exclusive; empty means up to the end of each partition"),
        "offsets": Param({}, type="object", title="Explicit offsets",
                         description='Per partition: {"0": [start, end], ...}; used when no time range is given'),
        "partitions": Param([], type="array", items={"type": "integer", "minimum": 0}, title="Partitions",
                            description="Empty: all partitions"),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Plan only; copy nothing"),
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
