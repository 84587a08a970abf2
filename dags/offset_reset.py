"""Reset the loader group's committed offsets (kafka-consumer-groups --reset-offsets semantics)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from quacknet.airflow.connections import UTC_TIME_HINT, UTC_TIME_PATTERN, defaults

DOC = """
### Offset reset
Moves a consumer group's committed offsets: `earliest`, `latest`, `datetime` (typed in UTC), explicit
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
        "group": Param(settings.loader_group, type="string", title="Consumer group", minLength=1, section="Group"),
        "topic": Param(settings.scans_topic, type="string", title="Topic", minLength=1, section="Group"),
        "partitions": Param(None, type=["null", "array"], items={"type": "integer", "minimum": 0}, title="Partitions",
                            description="Empty: all", section="Group"),
        "kind": Param("earliest", type="string", enum=["earliest", "latest", "datetime", "offsets", "shift"],
                      title="Reset to", section="Reset to"),
        "datetime": Param(None, type=["null", "string"], pattern=UTC_TIME_PATTERN, title="Datetime (UTC)",
                          description=f"The first offset at or after it. {UTC_TIME_HINT}", section="Reset to: datetime"),
        "offsets": Param(None, type=["null", "object"], title="Offsets", description='{"0": 123, ...}',
                         section="Reset to: offsets"),
        "shift": Param(None, type=["null", "integer"], title="Shift by", description="May be negative",
                       section="Reset to: shift"),
        "dry_run": Param(True, type=["null", "boolean"], title="Dry run", description="Show current -> new only",
                         section="Run"),
        "wait_s": Param(None, type=["null", "integer"], minimum=0, title="Wait for the group to empty (s)",
                        description="Empty: refuse at once while the group has members", section="Run"),
    },
)
def offset_reset():
    @task
    def reset(params=None) -> list[dict]:
        from quacknet.airflow import tasks

        return tasks.reset_offsets(params)

    reset()


offset_reset()
