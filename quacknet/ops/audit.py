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
- the cluster's health (``check_cluster``): ``brokers`` (a registered broker fenced), ``offline``
  (a partition without a leader), ``under_replicated`` (an ISR smaller than the replica set),
  ``min_isr`` (an ISR below min.insync.replicas: acks=all writes are refused), for the owned topics
  and ``__consumer_offsets`` (the loader's commits); ``quorum_leader`` (the KRaft controller quorum
  has no leader) and ``quorum_lag`` (a voter not caught up with the leader's log for longer than
  ``QUACKNET_AUDIT_QUORUM_MAX_LAG_S``).
Each check is a function the DAG's task calls; ``report`` stores every finding in
``<db>.audit_findings`` and fails with a message naming topic, partition and numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from confluent_kafka.admin import ConfigResource

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
    admin = kafka.python_admin(settings, client_id="quacknet-audit")
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


# -- the cluster's health ---------------------------------------------------------------------------

OFFSETS_TOPIC = "__consumer_offsets"


@dataclass(frozen=True)
class PartitionHealth:
    partition: int
    leader: int  # -1: no leader (offline)
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def broker_findings(brokers: list[dict]) -> list[Finding]:
    """Every registered broker (DescribeCluster with fenced brokers) must be unfenced: a fenced one is
    down or cut off from the controller, and holds no leadership."""
    findings = []
    for b in sorted(brokers, key=lambda b: b["broker_id"]):
        fenced = bool(b.get("is_fenced"))
        where = f"broker {b['broker_id']} ({b['host']}:{b['port']})"
        findings.append(Finding("brokers", "", -1, not fenced, 0 if fenced else 1, 1,
                                f"{where} is fenced: down, or not heartbeating to the controller" if fenced
                                else f"{where} is registered and unfenced", where))
    return findings


def partition_findings(topic: str, partitions: list[PartitionHealth], min_isr: int) -> list[Finding]:
    """Per partition that fails: ``offline`` (no leader), ``under_replicated`` (ISR < replicas), ``min_isr``
    (ISR < min.insync.replicas); for each of the three checks one topic-level line when none fails."""
    offline = [p for p in partitions if p.leader < 0]
    under = [p for p in partitions if len(p.isr) < len(p.replicas)]
    below = [p for p in partitions if len(p.isr) < min_isr]
    n = len(partitions)
    findings = [Finding("offline", topic, p.partition, False, 0, 1,
                        f"{topic}[{p.partition}]: no leader (replicas {list(p.replicas)}, in sync {list(p.isr)}): "
                        "nothing can be written or read", "partition") for p in offline]
    findings += [Finding("under_replicated", topic, p.partition, False, len(p.isr), len(p.replicas),
                         f"{topic}[{p.partition}]: {len(p.isr)} of {len(p.replicas)} replicas in sync (in sync "
                         f"{list(p.isr)}, missing {sorted(set(p.replicas) - set(p.isr))})", "partition") for p in under]
    findings += [Finding("min_isr", topic, p.partition, False, len(p.isr), min_isr,
                         f"{topic}[{p.partition}]: {len(p.isr)} replica(s) in sync, below min.insync.replicas "
                         f"{min_isr}: acks=all writes are refused", "partition") for p in below]
    if not offline:
        findings.append(Finding("offline", topic, -1, True, n, n, f"{topic}: all {n} partitions have a leader", "topic"))
    if not under:
        factors = "/".join(str(f) for f in sorted({len(p.replicas) for p in partitions})) or "0"
        findings.append(Finding("under_replicated", topic, -1, True, n, n,
                                f"{topic}: every replica of its {n} partitions in sync ({factors} each)", "topic"))
    if not below:
        least = min((len(p.isr) for p in partitions), default=0)
        findings.append(Finding("min_isr", topic, -1, True, least, min_isr,
                                f"{topic}: at least {least} replica(s) in sync per partition (min.insync.replicas "
                                f"{min_isr})", "topic"))
    return findings


def quorum_findings(quorum: dict | None, max_lag_s: float, error: str | None = None) -> list[Finding]:
    """The KRaft controller quorum (DescribeQuorum of __cluster_metadata): a leader, and every voter
    caught up with the leader's log within ``max_lag_s`` (measured on the leader's clock: the time since
    the voter last reached the leader's end offset, against the leader's own entry)."""
    if quorum is None:
        return [Finding("quorum_leader", "__cluster_metadata", 0, False, -1, 0,
                        f"the controller quorum did not answer: {error}", "quorum")]
    [part] = [p for t in quorum["topics"] for p in t["partitions"]]
    leader, epoch = part["leader_id"], part["leader_epoch"]
    voters = part["current_voters"]
    if part.get("error") or leader is None or leader < 0:
        return [Finding("quorum_leader", "__cluster_metadata", 0, False, -1, 0,
                        f"the controller quorum has no leader (epoch {epoch}, {len(voters)} voters"
                        f"{'; ' + part['error'] if part.get('error') else ''}): no metadata change can be made",
                        "quorum")]
    findings = [Finding("quorum_leader", "__cluster_metadata", 0, True, leader, 0,
                        f"controller quorum leader: node {leader} (epoch {epoch}, {len(voters)} voters)", "quorum")]
    [own] = [v for v in voters if v["replica_id"] == leader] or [None]
    now = own["last_caught_up_timestamp"] if own else max(v["last_caught_up_timestamp"] for v in voters)
    end = own["log_end_offset"] if own else part["high_watermark"]
    for v in sorted(voters, key=lambda v: v["replica_id"]):
        if v["replica_id"] == leader:
            continue
        behind = max(0, end - v["log_end_offset"])
        caught_up = v["last_caught_up_timestamp"]
        lag_s = float("inf") if caught_up is None or caught_up < 0 else max(0.0, (now - caught_up) / 1000)
        ok = lag_s <= max_lag_s
        since = "never caught up" if lag_s == float("inf") else f"last caught up {lag_s:.1f} s ago"
        findings.append(Finding("quorum_lag", "__cluster_metadata", 0, ok, round(min(lag_s, 1e9), 3), max_lag_s,
                                f"voter {v['replica_id']}: {behind} records behind the leader, {since} "
                                f"(maximum {max_lag_s:g} s)", f"voter {v['replica_id']}"))
    return findings


def _partitions(metadata, topic: str) -> list[PartitionHealth]:
    meta = metadata.topics.get(topic)
    if meta is None or meta.error is not None:
        return []
    return [PartitionHealth(p, m.leader, tuple(m.replicas), tuple(m.isrs)) for p, m in sorted(meta.partitions.items())]


def check_cluster(settings: Settings, admin) -> list[Finding]:
    """Brokers, partitions (owned topics and __consumer_offsets) and the controller quorum."""
    names = [s.name for s in topics.specs(settings)] + [OFFSETS_TOPIC]
    metadata = admin.list_topics(timeout=30)
    present = [n for n in names if _partitions(metadata, n)]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in present]
    configs = {r.name: f.result(timeout=30) for r, f in admin.describe_configs(resources).items()} if resources else {}
    client = kafka.python_admin(settings, client_id="quacknet-audit")
    try:
        findings = broker_findings(client.describe_cluster()["brokers"])
        for name in present:
            entry = configs[name].get("min.insync.replicas")
            findings += partition_findings(name, _partitions(metadata, name), int(entry.value) if entry else 1)
        try:
            quorum, error = client.describe_metadata_quorum(), None
        except Exception as exc:  # no leader: the quorum cannot answer, which is itself the finding
            quorum, error = None, f"{type(exc).__name__}: {exc}"
        findings += quorum_findings(quorum, settings.audit_quorum_max_lag_s, error)
    finally:
        client.close()
    return findings
