"""Retention audits: findings, not side effects.

- ``retention``: each owned topic's effective retention.ms / retention.bytes against the declared
  policy (``quacknet.topics``): a wrong or unbounded retention is how a broker's disk fills up.
- ``lag_horizon``: for each consumer group, how long until its oldest unconsumed message is deleted
  by retention. Less than ``min_hours`` left (or already past) is a data-loss risk.
- ``disk_use`` / ``disk_free`` / ``disk_worst_case``: each broker log dir's size (DescribeLogDirs)
  against a budget, the volume's free share, and what the owned topics may grow to under their
  retention.bytes (unbounded is a violation: only time would limit the disk).
- ``completeness``: per partition, Kafka offsets the loader has committed past that no load
  (``<db>.load_ledger``) covers and no stored row's lineage names: in Kafka, missing in ClickHouse.
Each check is a function the DAG's task calls; ``report`` stores every finding in
``<db>.audit_findings`` and fails with a message naming topic, partition and numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from quacknet import kafka, topics, warehouse
from quacknet.errors import Conflict, Unavailable
from quacknet.settings import HOUR_MS, Settings
from quacknet.units import human_bytes
from quacknet.warehouse.migrations import require_current

RETENTION_KEYS = ("retention.ms", "retention.bytes")


@dataclass(frozen=True)
class Finding:
    check: str
    topic: str
    partition: int  # -1 for topic-level findings
    ok: bool
    value: float
    limit: float
    message: str
    subject: str = ""  # e.g. the consumer group


def retention_findings(specs: list[topics.TopicSpec], current: dict[str, topics.TopicState]) -> list[Finding]:
    findings = []
    for spec in specs:
        state = current.get(spec.name)
        if state is None:
            findings.append(Finding("retention", spec.name, -1, False, -1, -1,
                                    f"{spec.name}: the topic does not exist (the kafka_topics DAG creates it)", "topic"))
            continue
        for key in RETENTION_KEYS:
            want = spec.configs.get(key)
            if want is None:
                continue
            have = state.configs.get(key)
            ok = have == want
            findings.append(Finding("retention", spec.name, -1, ok, float(have) if have not in (None, "") else -1, float(want),
                                    f"{spec.name}: {key} is {have}, policy says {want}" if not ok else f"{spec.name}: {key} = {want}",
                                    key))
    return findings


def lag_horizon_findings(settings: Settings, group: str, topic: str, retention_ms: int, min_hours: float,
                         now: dt.datetime | None = None) -> list[Finding]:
    """Per partition: hours until the group's oldest unconsumed message expires."""
    now_ms = (now or dt.datetime.now(dt.UTC)).timestamp() * 1000
    consumer = kafka.consumer(settings, group)
    findings = []
    try:
        for po in kafka.partition_offsets(consumer, topic):
            p = po.partition
            position = po.committed if po.committed is not None else po.low
            lag = max(0, po.high - position)
            if lag == 0:
                # nothing unread: the horizon is the whole retention
                findings.append(Finding("lag_horizon", topic, p, True, round(retention_ms / HOUR_MS, 3),
                                        min_hours, f"{topic}[{p}]: group {group} is caught up", group))
                continue
            if position < po.low:  # retention already deleted what the group had not read
                findings.append(Finding("lag_horizon", topic, p, False, 0.0, min_hours,
                                        f"{topic}[{p}]: group {group} committed {position} but retention "
                                        f"already deleted up to {po.low}: {po.low - position} messages lost", group))
                continue
            oldest = kafka.timestamp_at(consumer, topic, p, position)
            if oldest is None:
                raise Unavailable(f"{topic}[{p}]: could not read offset {position}")
            hours_left = (oldest + retention_ms - now_ms) / HOUR_MS
            ok = hours_left >= min_hours
            findings.append(Finding(
                "lag_horizon", topic, p, ok, round(hours_left, 3), min_hours,
                f"{topic}[{p}]: group {group} lags {lag} messages; its oldest unread message expires in "
                f"{hours_left:.2f} h (minimum {min_hours} h)", group))
    finally:
        consumer.close()
    return findings


def log_dirs(settings: Settings) -> list[dict]:
    """DescribeLogDirs of every broker. confluent-kafka has no such call, so this one goes through
    kafka-python's admin client (the protocol's v4 carries the volume's total and usable bytes)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","), client_id="quacknet-audit")
    try:
        return admin.describe_log_dirs()
    finally:
        admin.close()


def disk_findings(brokers: list[dict], budget_bytes: int, min_free_ratio: float) -> list[Finding]:
    findings = []
    for broker in brokers:
        for d in broker["log_dirs"]:
            where = f"broker {broker['broker']} {d['log_dir']}"
            if d.get("error_code", 0) != 0:
                findings.append(Finding("disk_use", "", -1, False, -1, budget_bytes,
                                        f"{where}: log dir reports error code {d['error_code']} (offline?)", where))
                continue
            used = sum(p["partition_size"] for t in d["topics"] for p in t["partitions"])
            findings.append(Finding("disk_use", "", -1, used <= budget_bytes, used, budget_bytes,
                                    f"{where}: Kafka logs use {_gib(used)} of a {_gib(budget_bytes)} budget", where))
            total, usable = d.get("total_bytes", -1), d.get("usable_bytes", -1)
            if total and total > 0 and usable >= 0:
                free = usable / total
                findings.append(Finding("disk_free", "", -1, free >= min_free_ratio, round(free, 4), min_free_ratio,
                                        f"{where}: {_gib(usable)} of {_gib(total)} free ({free:.1%}; minimum "
                                        f"{min_free_ratio:.0%})", where))
    return findings


def worst_case_findings(current: dict[str, topics.TopicState], budget_bytes: int) -> list[Finding]:
    """What the owned topics may hold at most: partitions x (retention.bytes + one active segment)."""
    total, findings = 0, []
    for name, state in sorted(current.items()):
        bound = int(state.configs.get("retention.bytes", "-1"))
        if bound < 0:
            findings.append(Finding("disk_worst_case", name, -1, False, -1, budget_bytes,
                                    f"{name}: retention.bytes is unbounded (-1): only time limits its disk use"))
            continue
        total += state.partitions * (bound + int(state.configs.get("segment.bytes", "0")))
    findings.append(Finding("disk_worst_case", "", -1, total <= budget_bytes, total, budget_bytes,
                            f"owned topics may grow to {_gib(total)} under their retention.bytes "
                            f"(budget {_gib(budget_bytes)})"))
    return findings


def _gib(n: float) -> str:
    """Bytes in the unit that reads (595 KiB, 5.06 GiB), not always GiB (0.00 GiB for 595 KiB)."""
    return human_bytes(n)


GAPS = """
SELECT greatest(prev_end, {low:UInt64}) AS gap_start, first_offset AS gap_end FROM (
    SELECT first_offset, max(last_offset + 1) OVER (ORDER BY first_offset, last_offset
                                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM {db:Identifier}.load_ledger
    WHERE topic = {topic:String} AND partition = {partition:UInt16}
      AND last_offset >= {low:UInt64} AND first_offset < {upto:UInt64})
WHERE first_offset > greatest(prev_end, {low:UInt64})
UNION ALL
SELECT greatest(max(last_offset) + 1, {low:UInt64}), {upto:UInt64} FROM {db:Identifier}.load_ledger
WHERE topic = {topic:String} AND partition = {partition:UInt16}
  AND last_offset >= {low:UInt64} AND first_offset < {upto:UInt64}
HAVING count() = 0 OR max(last_offset) + 1 < {upto:UInt64}
"""


def uncovered(client, database: str, topic: str, partition: int, low: int, upto: int) -> list[tuple[int, int]]:
    """Offset ranges [start, end) within [low, upto) that no ledger entry covers."""
    if upto <= low:
        return []
    rows = client.query(GAPS, parameters={"db": database, "topic": topic, "partition": partition,
                                          "low": low, "upto": upto}).result_rows
    return sorted((int(a), int(b)) for a, b in rows if int(b) > int(a))


def missing_offsets(client, database: str, topic: str, partition: int, gaps: list[tuple[int, int]]) -> int:
    """Of the uncovered offsets, how many no stored row names in its lineage (rows loaded before
    the ledger existed still count as present). Rows and the copies' lineage (``scan_copies``)
    both count: since the store is keyed by scan_id alone, a copy's row can be merged away under
    another copy of its scan, and migration 4 merged copies the first store kept apart."""
    if not gaps:
        return 0
    cond = " OR ".join(f"(kafka_offset >= {a} AND kafka_offset < {b})" for a, b in gaps)
    where = f"kafka_topic = {{t:String}} AND kafka_partition = {{p:UInt16}} AND ({cond})"
    found = client.query(f"SELECT uniqExact(kafka_offset) FROM (SELECT kafka_offset FROM {database}.scans_store WHERE {where} "
                         f"UNION ALL SELECT kafka_offset FROM {database}.scan_copies WHERE {where})",
                         parameters={"t": topic, "p": partition})
    return sum(b - a for a, b in gaps) - found.result_rows[0][0]


def completeness_findings(settings: Settings, client, database: str, group: str, topic: str) -> list[Finding]:
    """Per partition: offsets from Kafka's earliest to the group's committed offset must be in ClickHouse."""
    consumer = kafka.consumer(settings, group)
    findings = []
    try:
        for po in kafka.partition_offsets(consumer, topic):
            p, low = po.partition, po.low
            upto = low if po.committed is None else min(max(po.committed, low), po.high)
            gaps = uncovered(client, database, topic, p, low, upto)
            missing = missing_offsets(client, database, topic, p, gaps)
            shown = ", ".join(f"{a}..{b - 1}" for a, b in gaps[:5]) + (" ..." if len(gaps) > 5 else "")
            if missing:
                message = (f"{topic}[{p}]: {missing} of offsets {low}..{upto - 1} (committed by {group}) are "
                           f"in Kafka but not in ClickHouse; uncovered ranges {shown}")
            elif upto > low:
                message = f"{topic}[{p}]: offsets {low}..{upto - 1} all loaded"
            else:
                message = f"{topic}[{p}]: {group} has committed nothing past Kafka's earliest offset {low}"
            findings.append(Finding("completeness", topic, p, missing == 0, missing, 0, message, group))
    finally:
        consumer.close()
    return findings


def store(client, database: str, run_at: dt.datetime, findings: list[Finding]) -> None:
    if not findings:
        return
    rows = [[run_at, f.check, f.subject, f.topic, f.partition, f.ok, f.value, f.limit, f.message] for f in findings]
    client.insert(f"{database}.audit_findings", rows,
                  column_names=["run_at", "check", "subject", "topic", "partition", "ok", "value", "limit", "message"])


def violations_message(findings: list[Finding], checks_not_run: int = 0) -> str | None:
    bad = [f for f in findings if not f.ok]
    if not bad and not checks_not_run:
        return None
    lines = [f"- [{f.check}] {f.message}" for f in bad]
    if checks_not_run:
        lines.append(f"- {checks_not_run} check(s) could not run: see their task logs")
    return f"{len(bad)} retention audit violation(s):\n" + "\n".join(lines)


def as_dicts(findings: list[Finding]) -> list[dict]:
    return [asdict(f) for f in findings]


def from_dicts(rows: list[dict]) -> list[Finding]:
    return [Finding(**row) for row in rows]


# -- the checks as the DAG runs them: each returns its findings, ``report`` judges them all -------

def check_retention(settings: Settings, admin) -> list[Finding]:
    specs = topics.specs(settings)
    return retention_findings(specs, topics.describe(admin, [s.name for s in specs]))


def check_disk(settings: Settings, admin) -> list[Finding]:
    current = topics.describe(admin, [s.name for s in topics.specs(settings)])
    budget = settings.audit_disk_budget_bytes
    return (disk_findings(log_dirs(settings), budget, settings.audit_min_free_ratio)
            + worst_case_findings(current, budget))


def check_lag_horizon(settings: Settings, admin, groups: list[str], min_hours: float) -> list[Finding]:
    """Against the scans topic's effective retention (the declared one while the topic is missing)."""
    spec = topics.spec_for(settings, settings.scans_topic)
    state = topics.describe(admin, [spec.name]).get(spec.name)
    retention_ms = int((state or spec).configs["retention.ms"])
    return [f for group in groups
            for f in lag_horizon_findings(settings, group, settings.scans_topic, retention_ms, min_hours)]


def check_completeness(settings: Settings, group: str) -> list[Finding]:
    client = warehouse.client(settings)
    try:
        require_current(client, settings.clickhouse_database)
        return completeness_findings(settings, client, settings.clickhouse_database, group, settings.scans_topic)
    finally:
        client.close()


def report(settings: Settings, results: list[list[dict] | None], run_at: dt.datetime | None = None,
           echo=print) -> list[Finding]:
    """Store every check's findings (``None``: a check that could not run), echo one line each, and
    return them; raises ``Conflict`` naming each violation when any check found one or could not run."""
    findings = from_dicts([f for result in results if result for f in result])
    client = warehouse.client(settings)
    try:
        require_current(client, settings.clickhouse_database)
        store(client, settings.clickhouse_database, run_at or dt.datetime.now(dt.UTC), findings)
    finally:
        client.close()
    for line in summary_lines(findings):
        echo(line)
    problem = violations_message(findings, checks_not_run=sum(1 for result in results if result is None))
    if problem:
        raise Conflict(problem)
    return findings


def summary_lines(findings: list[Finding]) -> list[str]:
    return [("OK  " if f.ok else "FAIL") + f" [{f.check}] {f.message}" for f in findings]
