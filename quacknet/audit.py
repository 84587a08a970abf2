"""Retention audits: findings, not side effects.

- ``retention``: each owned topic's effective retention.ms / retention.bytes against the declared
  policy (``quacknet.topics``) — the QuackNet article's author filled a 256 GB SSD with a wrong one.
- ``lag_horizon``: for each consumer group, how long until its oldest unconsumed message is deleted
  by retention. Less than ``min_hours`` left (or already past) is a data-loss risk.
Findings are stored in ``<db>.audit_findings``; ``violations_message`` names topic, partition and
numbers so a failing task says what is wrong.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass

from confluent_kafka import TopicPartition

from quacknet import kafka, topics
from quacknet.settings import Settings

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
        for key in RETENTION_KEYS:
            want = spec.configs.get(key)
            if want is None:
                continue
            have = state.configs.get(key) if state else None
            ok = have == want
            findings.append(Finding("retention", spec.name, -1, ok, float(have) if have not in (None, "") else -1, float(want),
                                    f"{spec.name}: {key} is {have}, policy says {want}" if not ok else f"{spec.name}: {key} = {want}",
                                    key))
    return findings


def lag_horizon_findings(settings: Settings, group: str, topic: str, retention_ms: int, min_hours: float,
                         now: dt.datetime | None = None) -> list[Finding]:
    """Per partition: hours until the group's oldest unconsumed message expires."""
    now_ms = (now or dt.datetime.now(dt.timezone.utc)).timestamp() * 1000
    consumer = kafka.consumer(settings, group)
    findings = []
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            position = tp.offset if tp.offset >= 0 else low
            lag = max(0, high - position)
            if lag == 0:
                # nothing unread: the horizon is the whole retention
                findings.append(Finding("lag_horizon", topic, tp.partition, True, round(retention_ms / 3_600_000, 3),
                                        min_hours, f"{topic}[{tp.partition}]: group {group} is caught up", group))
                continue
            if position < low:  # retention already deleted what the group had not read
                findings.append(Finding("lag_horizon", topic, tp.partition, False, 0.0, min_hours,
                                        f"{topic}[{tp.partition}]: group {group} committed {position} but retention "
                                        f"already deleted up to {low}: {low - position} messages lost", group))
                continue
            oldest = _timestamp_at(consumer, topic, tp.partition, position)
            hours_left = (oldest + retention_ms - now_ms) / 3_600_000
            ok = hours_left >= min_hours
            findings.append(Finding(
                "lag_horizon", topic, tp.partition, ok, round(hours_left, 3), min_hours,
                f"{topic}[{tp.partition}]: group {group} lags {lag} messages; its oldest unread message expires in "
                f"{hours_left:.2f} h (minimum {min_hours} h)", group))
    finally:
        consumer.close()
    return findings


def _timestamp_at(consumer, topic: str, partition: int, offset: int) -> float:
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg.timestamp()[1]
    finally:
        consumer.unassign()
    raise RuntimeError(f"{topic}[{partition}]: could not read offset {offset}")


def store(client, database: str, run_at: dt.datetime, findings: list[Finding]) -> None:
    if not findings:
        return
    rows = [[run_at, f.check, f.subject, f.topic, f.partition, f.ok, f.value, f.limit, f.message] for f in findings]
    client.insert(f"{database}.audit_findings", rows,
                  column_names=["run_at", "check", "subject", "topic", "partition", "ok", "value", "limit", "message"])


def violations_message(findings: list[Finding]) -> str | None:
    bad = [f for f in findings if not f.ok]
    if not bad:
        return None
    return f"{len(bad)} retention audit violation(s):\n" + "\n".join(f"- [{f.check}] {f.message}" for f in bad)


def as_dicts(findings: list[Finding]) -> list[dict]:
    return [asdict(f) for f in findings]
