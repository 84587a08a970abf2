"""What the DAGs' tasks do: each DAG file wires one of these per task and nothing else.

Settings come from Airflow connections at run time (``connections``), never at parse time. Every
task runs inside ``failing_fast``: an error that retrying cannot fix (invalid parameters, a state
an operator must change) fails the task at once with its message, without using up retries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator

from quacknet.airflow.connections import kafka_admin, settings_from_airflow
from quacknet.errors import QuackNetError

# Summaries go through logging, not print: they appear in the task log in order, in its main section.
log = logging.getLogger("quacknet.tasks")


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
    """The declaration for the brokers that answer now (replication min(3, brokers)); a replication
    below it is raised by partition reassignment."""
    from quacknet import kafka, topics

    with failing_fast():
        settings, admin = settings_from_airflow(), kafka_admin()
        brokers = topics.broker_ids(admin)
        log.info("cluster: %d broker(s) %s", len(brokers), brokers)
        changes = topics.reconcile(admin, topics.specs(settings, len(brokers)), dry_run=dry_run,
                                   reassign=lambda topic, plan, timeout: kafka.reassign_partitions(settings, topic, plan, 120))
    for c in changes:
        log.info("%s%s %s: %s", "would " if dry_run else "", c.action, c.topic, c.detail)
    if not changes:
        log.info("topics match their declaration: nothing to change")
    return [{"topic": c.topic, "action": c.action, "detail": c.detail} for c in changes]


# -- replay_to_clickhouse --------------------------------------------------------------------------

def replay_plan(params: dict) -> list[dict]:
    from quacknet import replay

    with failing_fast():
        arguments = replay.plan_arguments(params)
        ranges = replay.plan(settings_from_airflow(), params["topic"], **arguments)
    for line in replay.describe_plan(params["topic"], ranges, arguments.get("start_time"), arguments.get("end_time")):
        log.info(line)
    return [{"partition": r.partition, "start": r.start, "end": r.end, "earliest_available": r.earliest_available}
            for r in ranges]


def replay_copy(ranges: list[dict], params: dict, run_id: str) -> dict:
    from quacknet import replay

    if params.get("dry_run") is True:
        log.info("dry run: nothing copied")
        return {"dry_run": True, "planned": sum(r["end"] - r["start"] for r in ranges)}
    with failing_fast():
        result = replay.copy(settings_from_airflow(), params["topic"], [replay.PartitionRange(**r) for r in ranges],
                             source=f"replay:{run_id}")
    log.info(result.summary())
    return result.as_dict()


# -- offset_reset ----------------------------------------------------------------------------------

def reset_offsets(params: dict) -> list[dict]:
    from quacknet import params as p
    from quacknet.ops import offsets

    with failing_fast():
        settings = settings_from_airflow()
        spec = offsets.spec_from_params(params)
        partitions = p.partitions(params.get("partitions"))
        plan = offsets.plan(settings, params["group"], params["topic"], spec, partitions)
        log.info("offset reset of group %s on %s to %s", params["group"], params["topic"], _describe_spec(spec))
        for line in offsets.describe(plan).splitlines():
            log.info(line)
        if params.get("dry_run") is not False:  # only an explicit "no" moves offsets
            log.info("dry run: nothing changed")
        else:
            offsets.execute(settings, params["group"], params["topic"], plan, wait_s=params.get("wait_s") or 0)
            log.info("group %s reset on %d partition(s)", params["group"], len(plan))
    return [r.as_dict() for r in plan]


def _describe_spec(spec) -> str:
    if spec.kind == "datetime":
        return f"the first offset at or after {spec.when.astimezone(dt.UTC).isoformat()} (UTC)"
    if spec.kind == "shift":
        return f"the current offset {spec.shift:+d}"
    if spec.kind == "offsets":
        return "explicit offsets " + ", ".join(f"{p}: {o}" for p, o in sorted(spec.offsets.items()))
    return f"the {spec.kind} offset"


# -- retention_audit -------------------------------------------------------------------------------

def audit_retention() -> list[dict]:
    from quacknet.ops import audit

    with failing_fast():
        return audit.as_dicts(audit.check_retention(settings_from_airflow(), kafka_admin()))


def audit_disk() -> list[dict]:
    from quacknet.ops import audit

    with failing_fast():
        return audit.as_dicts(audit.check_disk(settings_from_airflow(), kafka_admin()))


def audit_cluster() -> list[dict]:
    from quacknet.ops import audit

    with failing_fast():
        return audit.as_dicts(audit.check_cluster(settings_from_airflow(), kafka_admin()))


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
        return audit.as_dicts(audit.report(settings_from_airflow(), results, echo=log.info))
