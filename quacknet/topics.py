"""Kafka topics, declared in one place and reconciled idempotently.

``reconcile`` creates what is missing, grows partitions when the spec asks (never
shrinks: Kafka cannot, and key->partition mapping would silently change), and brings
drifted configs back with incremental alter configs. Each change is reported; a
dry run reports without changing anything. The comparison (``diff``) is pure.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Change:
    topic: str
    action: str  # create | add_partitions | alter_config
    detail: str


def specs(settings: Settings) -> list[TopicSpec]:
    """Every topic QuackNet owns. Both are bounded in time and in bytes, and stamped with broker
    time (LogAppendTime), not phone clocks: time-range replays follow when Kafka received a scan."""
    def configs(retention_hours: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(retention_hours * HOUR_MS),
                "retention.bytes": str(settings.retention_bytes_per_partition),
                "message.timestamp.type": "LogAppendTime"}

    return [
        TopicSpec(settings.scans_topic, settings.scans_partitions, configs(settings.scans_retention_hours)),
        TopicSpec(settings.dlq_topic, settings.dlq_partitions, configs(settings.dlq_retention_hours)),
    ]


def spec_for(settings: Settings, name: str) -> TopicSpec:
    [spec] = [s for s in specs(settings) if s.name == name]
    return spec


def diff(spec: TopicSpec, current: TopicState | None) -> list[Change]:
    if current is None:
        configs = ", ".join(f"{k}={v}" for k, v in sorted(spec.configs.items()))
        return [Change(spec.name, "create", f"{spec.partitions} partitions; {configs}")]
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
    return changes


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
        states[res.name] = TopicState(len(metadata[res.name].partitions), {k: e.value for k, e in entries.items()})
    return states


def reconcile(admin: AdminClient, wanted: list[TopicSpec], dry_run: bool = False, timeout: float = 30) -> list[Change]:
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
        drifted = [c.detail.split(":", 1)[0] for c in cs if c.action == "alter_config"]
        if drifted:
            resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name, incremental_configs=[
                ConfigEntry(k, spec.configs[k], incremental_operation=AlterConfigOpType.SET) for k in drifted])
            admin.incremental_alter_configs([resource])[resource].result(timeout=timeout)
    return changes
