"""Reset a consumer group's committed offsets, with ``kafka-consumer-groups --reset-offsets`` semantics.

Specs: ``earliest``, ``latest``, ``datetime`` (first offset whose broker timestamp is at or after
it; past the end means latest), ``offsets`` (explicit per partition), ``shift`` (current plus N,
may be negative). As the tool does, targets outside a partition's available range are clamped to
[earliest, latest]; a partition with no committed offset shifts from its earliest. ``plan`` shows
current -> new per partition (the dry run); ``execute`` refuses while the group has active
members, because a running consumer would overwrite the reset with its next commit.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from quacknet import kafka
from quacknet.settings import Settings


class OffsetResetError(RuntimeError):
    """The reset cannot be done as asked (active members, unknown partitions, bad spec)."""


@dataclass(frozen=True)
class ResetSpec:
    kind: str  # earliest | latest | datetime | offsets | shift
    when: dt.datetime | None = None
    offsets: dict[int, int] | None = None
    shift: int = 0

    def __post_init__(self):
        if self.kind not in ("earliest", "latest", "datetime", "offsets", "shift"):
            raise OffsetResetError(f"unknown reset kind {self.kind!r}")
        if self.kind == "datetime" and (self.when is None or self.when.tzinfo is None):
            raise OffsetResetError("a datetime reset needs a timezone-aware time (UTC)")
        if self.kind == "offsets" and not self.offsets:
            raise OffsetResetError("an offsets reset needs {partition: offset}")


def spec_from_params(params: dict) -> ResetSpec:
    """The reset form's params as a ResetSpec (a readable error for a bad form)."""
    kind = params.get("kind")
    if kind == "datetime":
        raw = params.get("datetime") or ""
        try:
            when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise OffsetResetError(f"datetime={raw!r} is not an ISO 8601 time") from None
        return ResetSpec("datetime", when=when)
    if kind == "offsets":
        try:
            return ResetSpec("offsets", offsets={int(p): int(o) for p, o in (params.get("offsets") or {}).items()})
        except (TypeError, ValueError):
            raise OffsetResetError(f'offsets must look like {{"0": 123}}, got {params.get("offsets")!r}') from None
    if kind == "shift":
        return ResetSpec("shift", shift=int(params.get("shift") or 0))
    return ResetSpec(kind)


@dataclass(frozen=True)
class PartitionReset:
    partition: int
    current: int | None  # None: nothing committed
    new: int
    earliest: int
    latest: int


def plan(settings: Settings, group: str, topic: str, spec: ResetSpec, partitions: list[int] | None = None) -> list[PartitionReset]:
    consumer = kafka.consumer(settings, group)  # never subscribes: reads the group's commits only
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise OffsetResetError(f"topic {topic} does not exist")
        chosen = sorted(partitions or (spec.offsets if spec.kind == "offsets" else meta.partitions))
        unknown = [p for p in chosen if p not in meta.partitions]
        if unknown:
            raise OffsetResetError(f"topic {topic} has no partition(s) {unknown}")
        tps = [TopicPartition(topic, p) for p in chosen]
        committed = {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in consumer.committed(tps, timeout=10)}
        by_time = {}
        if spec.kind == "datetime":
            ms = int(spec.when.timestamp() * 1000)
            by_time = {tp.partition: tp.offset for tp in consumer.offsets_for_times(
                [TopicPartition(topic, p, ms) for p in chosen], timeout=10)}
        resets = []
        for p in chosen:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            current = committed[p]
            target = {
                "earliest": lambda: low,
                "latest": lambda: high,
                "datetime": lambda: high if by_time[p] < 0 else by_time[p],
                "offsets": lambda: spec.offsets[p],
                "shift": lambda: (current if current is not None else low) + spec.shift,
            }[spec.kind]()
            resets.append(PartitionReset(p, current, min(max(target, low), high), low, high))
        return resets
    finally:
        consumer.close()


def active_members(settings: Settings, group: str) -> int:
    admin = kafka.admin(settings)
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return len(description.members)


def execute(settings: Settings, group: str, topic: str, resets: list[PartitionReset], wait_s: float = 0) -> None:
    """Commit the planned offsets for the group; refuses (or waits up to ``wait_s``) while it has members."""
    deadline = time.monotonic() + wait_s
    while (members := active_members(settings, group)) > 0:
        if time.monotonic() >= deadline:
            raise OffsetResetError(f"group {group} has {members} active member(s); stop its consumers first "
                                   "(a running consumer would overwrite the reset with its next commit)")
        time.sleep(1)
    admin = kafka.admin(settings)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, r.partition, r.new) for r in resets])
    admin.alter_consumer_group_offsets([request])[group].result(timeout=30)


def describe(resets: list[PartitionReset]) -> str:
    lines = [f"{'PARTITION':>9}  {'CURRENT':>10}  {'NEW':>10}  {'EARLIEST':>10}  {'LATEST':>10}"]
    for r in resets:
        current = "-" if r.current is None else str(r.current)
        lines.append(f"{r.partition:>9}  {current:>10}  {r.new:>10}  {r.earliest:>10}  {r.latest:>10}")
    return "\n".join(lines)


