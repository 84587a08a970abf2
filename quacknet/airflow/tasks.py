"""What the DAGs' tasks do: each DAG file wires one of these per task and nothing else.

Settings come from Airflow connections at run time (``connections``), never at parse time. Every
task runs inside ``failing_fast``: an error that retrying cannot fix (invalid parameters, a state
an operator must change) fails the task at once with its message, without using up retries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from quacknet.airflow.connections import kafka_admin, settings_from_airflow
from quacknet.errors import QuackNetError


@contextlib.contextmanager
def failing_fast() -> Iterator[None]:
    try:
        yield
    except QuackNetError as exc:
        if exc.retriable:
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


# -- kafka_topics ----------------------------------------------------------------------------------

def reconcile_topics(dry_run: bool) -> list[dict]:
    from quacknet import topics

    with failing_fast():
        changes = topics.reconcile(kafka_admin(), topics.specs(settings_from_airflow()), dry_run=dry_run)
    for c in changes:
        print(f"{'would ' if dry_run else ''}{c.action} {c.topic}: {c.detail}")
    if not changes:
        print("topics match their declaration: nothing to change")
    return [{"topic": c.topic, "action": c.action, "detail": c.detail} for c in changes]


# -- replay_to_clickhouse --------------------------------------------------------------------------

def replay_plan(params: dict) -> list[dict]:
    from quacknet import replay

    with failing_fast():
        arguments = replay.plan_arguments(params)
        ranges = replay.plan(settings_from_airflow(), params["topic"], **arguments)
    for r in ranges:
        print(f"partition {r.partition}: offsets [{r.start}, {r.end}) = {r.messages} messages")
    print(f"total {sum(r.messages for r in ranges)} messages")
    return [{"partition": r.partition, "start": r.start, "end": r.end, "earliest_available": r.earliest_available}
            for r in ranges]


def replay_copy(ranges: list[dict], params: dict, run_id: str) -> dict:
    from quacknet import replay

    if params["dry_run"]:
        print("dry run: nothing copied")
        return {"dry_run": True, "planned": sum(r["end"] - r["start"] for r in ranges)}
    with failing_fast():
        result = replay.copy(settings_from_airflow(), params["topic"], [replay.PartitionRange(**r) for r in ranges],
                             source=f"replay:{run_id}")
    print(f"read {result.read}, inserted {result.inserted}, already present {result.already_present}, "
          f"duplicates within batches {result.duplicates_in_batch}, dead-lettered {result.dead_lettered}")
    return result.as_dict()


# -- offset_reset ----------------------------------------------------------------------------------

def reset_offsets(params: dict) -> list[dict]:
    from quacknet.ops import offsets
    from quacknet.ops import params as p

    with failing_fast():
        settings = settings_from_airflow()
        spec = offsets.spec_from_params(params)
        partitions = p.partitions(params.get("partitions"))
        plan = offsets.plan(settings, params["group"], params["topic"], spec, partitions)
        print(offsets.describe(plan))
        if params["dry_run"]:
            print("dry run: nothing changed")
        else:
            offsets.execute(settings, params["group"], params["topic"], plan, wait_s=params["wait_s"])
            print(f"group {params['group']} reset on {len(plan)} partition(s)")
    return [r.as_dict() for r in plan]


# -- retention_audit -------------------------------------------------------------------------------

def audit_retention() -> list[dict]:
    from quacknet.ops import audit

    with failing_fast():
        return audit.as_dicts(audit.check_retention(settings_from_airflow(), kafka_admin()))


def audit_disk() -> list[dict]:
    from quacknet.ops import audit

    with failing_fast():
        return audit.as_dicts(audit.check_disk(settings_from_airflow(), kafka_admin()))


def audit_lag_horizon(params: dict) -> list[dict]:
    from quacknet.ops import audit

    with failing_fast():
        return audit.as_dicts(audit.check_lag_horizon(settings_from_airflow(), kafka_admin(), params["groups"],
                                                      params["min_hours_left"]))


def audit_completeness(params: dict) -> list[dict]:
    from quacknet.ops import audit

    with failing_fast():
        return audit.as_dicts(audit.check_completeness(settings_from_airflow(), params["loader_group"]))


def audit_report(results: list) -> list[dict]:
    from quacknet.ops import audit

    with failing_fast():
        return audit.as_dicts(audit.report(settings_from_airflow(), results))
