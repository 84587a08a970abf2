"""Reset the loader group's committed offsets (kafka-consumer-groups --reset-offsets semantics)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from quacknet.airflow.connections import defaults

DOC = """
### Offset reset
Moves a consumer group's committed offsets: `earliest`, `latest`, `datetime` (UTC), explicit
`offsets` (`{"0": 123, ...}`), or `shift` by N — as `kafka-consumer-groups --reset-offsets` does.
**Dry run by default**: the `reset` task logs and returns current -> new per partition. Executing
refuses while the group has active members (stop the loader first), or waits up to `wait_s`.
After it, the live loader re-consumes from there without duplicating rows. Logic: `quacknet/ops/offsets.py`.
"""

settings = defaults()


@dag(
    dag_id="offset_reset",
    description="Move a consumer group's committed offsets (dry run by default)",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["quacknet", "kafka", "operations"],
    doc_md=DOC,
    default_args={"owner": "quacknet", "retries": 0},
    params={
        "group": Param(settings.loader_group, type="string", title="Consumer group", minLength=1),
        "topic": Param(settings.scans_topic, type="string", title="Topic", minLength=1),
        "kind": Param("earliest", type="string", enum=["earliest", "latest", "datetime", "offsets", "shift"], title="Reset to"),
        "datetime": Param(None, type=["null", "string"], format="date-time", title="Datetime (UTC)", description="For kind=datetime"),
        "offsets": Param({}, type="object", title="Offsets", description='For kind=offsets: {"0": 123, ...}'),
        "shift": Param(0, type="integer", title="Shift by", description="For kind=shift; may be negative"),
        "partitions": Param([], type="array", items={"type": "integer", "minimum": 0}, title="Partitions", description="Empty: all"),
        "dry_run": Param(True, type="boolean", title="Dry run", description="Show current -> new only"),
        "wait_s": Param(0, type="integer", minimum=0, title="Wait for the group to empty (s)"),
    },
)
def offset_reset():
    @task
    def reset(params=None) -> list[dict]:
        from quacknet.airflow import tasks

        return tasks.reset_offsets(params)

    reset()


offset_reset()
