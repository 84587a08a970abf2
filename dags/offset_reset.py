"""Reset the loader group's committed offsets (kafka-consumer-groups --reset-offsets semantics; wiring only)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

DOC = """
### Offset reset
Moves a consumer group's committed offsets: `earliest`, `latest`, `datetime` (UTC), explicit
`offsets` (`{"0": 123, ...}`), or `shift` by N — as `kafka-consumer-groups --reset-offsets` does.
**Dry run by default**: the `plan` task logs and returns current -> new per partition. Executing
refuses while the group has active members (stop the loader first), or waits up to `wait_s`.
After it, the live loader re-consumes from there without duplicating rows. Logic: `quacknet/offsets.py`.
"""


@dag(
    dag_id="offset_reset",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["quacknet", "kafka", "operations"],
    doc_md=DOC,
    default_args={"owner": "quacknet", "retries": 0},
    params={
        "group": Param("clickhouse-loader", type="string", title="Consumer group", minLength=1),
        "topic": Param("netintel.scan.events", type="string", title="Topic", minLength=1),
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
        from quacknet import offsets
        from quacknet.connections import settings_from_airflow

        settings = settings_from_airflow()
        spec = offsets.spec_from_params(params)
        plan = offsets.plan(settings, params["group"], params["topic"], spec, params["partitions"] or None)
        print(offsets.describe(plan))
        if params["dry_run"]:
            print("dry run: nothing changed")
        else:
            offsets.execute(settings, params["group"], params["topic"], plan, wait_s=params["wait_s"])
            print(f"group {params['group']} reset on {len(plan)} partition(s)")
        return [r.__dict__ for r in plan]

    reset()


offset_reset()
