"""Kafka topics, declared in one place and reconciled idempotently.

``reconcile`` creates what is missing, grows partitions when the spec asks (never
shrinks: Kafka cannot, and key->partition mapping would silently change), brings
drifted configs back with incremental alter configs, and raises a replication below the
declaration by partition reassignment (never lowers one: a replication above the
declaration is reported and left, since it is what a cluster with a broker down looks
like). Each change is reported; a dry run reports without changing anything. The
comparison (``diff``) and the reassignment plan (``reassignment``) are pure.

Replication follows the cluster: ``min(3, brokers)`` copies, and ``min.insync.replicas`` 2 at
three copies, so an acknowledged write (acks=all) is on two brokers and one may fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from quacknet.errors import Conflict
from quacknet.logs import get_logger
from quacknet.settings import HOUR_MS, Settings

log = get_logger(__name__)


class TopicError(Conflict):
    """A spec the cluster cannot be brought to (e.g. fewer partitions than exist)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    replication_factor: int = 1


@dataclass(frozen=True)
class TopicState:
    partitions: int
    configs: dict[str, str]
    replicas: dict[int, list[int]] = field(default_factory=dict)  # partition -> brokers, preferred leader first


@dataclass(frozen=True)
class Change:
    topic: str
    action: str  # create | add_partitions | alter_config | reassign | report (nothing done)
    detail: str


def replication(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``brokers``: three copies once there
    are three brokers, two of which must have a write before it is acknowledged."""
    factor = max(1, min(3, brokers))
    return factor, 2 if factor >= 3 else 1


def specs(settings: Settings, brokers: int = 1) -> list[TopicSpec]:
    """Every topic QuackNet owns, for a cluster of ``brokers``. Both are bounded in time and in bytes,
    and stamped with broker time (LogAppendTime), not phone clocks: time-range replays follow when
    Kafka received a scan."""
    factor, min_isr = replication(brokers)

    def configs(retention_hours: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(retention_hours * HOUR_MS),
                "retention.bytes": str(settings.retention_bytes_per_partition),
                "message.timestamp.type": "LogAppendTime", "min.insync.replicas": str(min_isr)}

    return [
        TopicSpec(settings.scans_topic, settings.scans_partitions, configs(settings.scans_retention_hours), factor),
        TopicSpec(settings.dlq_topic, settings.dlq_partitions, configs(settings.dlq_retention_hours), factor),
    ]


def broker_ids(admin: AdminClient, timeout: float = 30) -> list[int]:
    """The brokers the cluster's metadata lists now (a fenced or stopped broker is not among them)."""
    return sorted(admin.list_topics(timeout=timeout).brokers)


def spec_for(settings: Settings, name: str) -> TopicSpec:
    [spec] = [s for s in specs(settings) if s.name == name]
    return spec


def diff(spec: TopicSpec, current: TopicState | None) -> list[Change]:
    if current is None:
        configs = ", ".join(f"{k}={v}" for k, v in sorted(spec.configs.items()))
        return [Change(spec.name, "create", f"{spec.partitions} partitions x {spec.replication_factor} "
                                            f"replica(s); {configs}")]
    if spec.partitions < current.partitions:
        raise TopicError(f"topic {spec.name} has {current.partitions} partitions but the spec asks for {spec.partitions}: "
                         "Kafka cannot shrink a topic (recreate it deliberately, or raise the spec)")
    changes = []
    if spec.partitions > current.partitions:
        changes.append(Change(spec.name, "add_partitions", f"{current.partitions} -> {spec.partitions}"))
    for key, want in sorted(spec.configs.items()):
        have = current.configs.get(key)
        if have != want:
            changes.append(Change(spec.name, "alter_config", f"{key}: {have} -> {want}"))
    factors = {p: len(r) for p, r in sorted(current.replicas.items())}
    below = {p: f for p, f in factors.items() if f < spec.replication_factor}
    above = {p: f for p, f in factors.items() if f > spec.replication_factor}
    if below:
        changes.append(Change(spec.name, "reassign", f"replication of partition(s) {_ranges(below)}: "
                                                     f"{_factors(below)} -> {spec.replication_factor}"))
    if above:
        changes.append(Change(spec.name, "report", f"replication of partition(s) {_ranges(above)} is {_factors(above)}, "
                                                   f"the declaration asks {spec.replication_factor} (fewer brokers answer "
                                                   "than hold copies?): left as it is, copies are never removed"))
    return changes


def _ranges(partitions: dict[int, int]) -> str:
    return ", ".join(str(p) for p in sorted(partitions))


def _factors(partitions: dict[int, int]) -> str:
    return "/".join(str(f) for f in sorted(set(partitions.values())))


def reassignment(replicas: dict[int, list[int]], factor: int, brokers: list[int]) -> dict[int, list[int]]:
    """New replica lists for the partitions with fewer than ``factor`` copies: each keeps its replicas in
    order (its preferred leader first) and gains the brokers holding the fewest replicas of the topic,
    spread by partition. Raises TopicError when fewer brokers answer than the factor asks."""
    if factor > len(brokers):
        raise TopicError(f"replication {factor} needs {factor} brokers; {len(brokers)} answer ({brokers})")
    load = dict.fromkeys(brokers, 0)
    for current in replicas.values():
        for b in current:
            if b in load:
                load[b] += 1
    plan = {}
    for partition, current in sorted(replicas.items()):
        if len(current) >= factor:
            continue
        new = list(current)
        while len(new) < factor:
            pick = min((b for b in brokers if b not in new), key=lambda b: (load[b], (b - partition) % len(brokers)))
            new.append(pick)
            load[pick] += 1
        plan[partition] = new
    return plan


def describe(admin: AdminClient, names: list[str], timeout: float = 30) -> dict[str, TopicState]:
    metadata = admin.list_topics(timeout=timeout).topics
    present = [n for n in names if n in metadata and metadata[n].error is None]
    if not present:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in present]
    futures = admin.describe_configs(resources)
    states = {}
    for res in resources:
        entries = futures[res].result(timeout=timeout)
        parts = metadata[res.name].partitions
        states[res.name] = TopicState(len(parts), {k: e.value for k, e in entries.items()},
                                      {p: list(meta.replicas) for p, meta in parts.items()})
    return states


Reassign = Callable[[str, dict[int, list[int]], float], None]


def reconcile(admin: AdminClient, wanted: list[TopicSpec], dry_run: bool = False, timeout: float = 30,
              reassign: Reassign | None = None) -> list[Change]:
    """Bring the topics to their specs. ``reassign(topic, {partition: replicas}, timeout)`` moves replicas
    (confluent-kafka has no such call; ``quacknet.kafka.reassign_partitions`` does it): without it, a
    replication below the declaration is reported as a TopicError."""
    current = describe(admin, [s.name for s in wanted], timeout)
    plan = [(spec, diff(spec, current.get(spec.name))) for spec in wanted]
    changes = [c for _, cs in plan for c in cs]
    for change in changes:
        log.info("topics.change", topic=change.topic, action=change.action, detail=change.detail, dry_run=dry_run)
    if dry_run or not changes:
        return changes
    for spec, cs in plan:
        actions = {c.action for c in cs}
        if "create" in actions:
            new = NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=spec.replication_factor,
                           config=dict(spec.configs))
            admin.create_topics([new], operation_timeout=timeout)[spec.name].result(timeout=timeout)
            continue
        if "add_partitions" in actions:
            admin.create_partitions([NewPartitions(spec.name, spec.partitions)])[spec.name].result(timeout=timeout)
        if "reassign" in actions:
            # copies first, so that a min.insync.replicas raised below finds them in sync
            plan = reassignment(current[spec.name].replicas, spec.replication_factor, broker_ids(admin, timeout))
            if reassign is None:
                raise TopicError(f"topic {spec.name} needs partition reassignment ({plan}) and no reassigner was given")
            reassign(spec.name, plan, timeout)
        drifted = [c.detail.split(":", 1)[0] for c in cs if c.action == "alter_config"]
        if drifted:
            resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name, incremental_configs=[
                ConfigEntry(k, spec.configs[k], incremental_operation=AlterConfigOpType.SET) for k in drifted])
            admin.incremental_alter_configs([resource])[resource].result(timeout=timeout)
    return changes
