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
from dataclasses import asdict, dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from quacknet import kafka
from quacknet import params as p
from quacknet.errors import Conflict, InvalidInput
from quacknet.retry import Backoff
from quacknet.settings import Settings

KINDS = ("earliest", "latest", "datetime", "offsets", "shift")


@dataclass(frozen=True)
class ResetSpec:
    kind: str  # one of KINDS
    when: dt.datetime | None = None
    offsets: dict[int, int] | None = None
    shift: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InvalidInput(f"unknown reset kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.kind == "datetime" and (self.when is None or self.when.tzinfo is None):
            raise InvalidInput("a datetime reset needs a timezone-aware time (UTC)")
        if self.kind == "offsets" and not self.offsets:
            raise InvalidInput('an offsets reset needs {"partition": offset, ...}')


def spec_from_params(params: dict) -> ResetSpec:
    """The reset form's params as a ResetSpec (a readable ``InvalidInput`` for a bad form)."""
    kind = params.get("kind")
    if kind == "datetime":
        return ResetSpec("datetime", when=p.parse_time(params.get("datetime"), "datetime"))
    if kind == "offsets":
        raw = p.mapping(params.get("offsets"), "offsets")
        return ResetSpec("offsets", offsets={p.partition_key(k, "offsets"): p.integer(v, f'offsets["{k}"]', minimum=0)
                                             for k, v in raw.items()})
    if kind == "shift":
        return ResetSpec("shift", shift=p.integer(params.get("shift"), "shift"))
    return ResetSpec(kind)


@dataclass(frozen=True)
class PartitionReset:
    partition: int
    current: int | None  # None: nothing committed
    new: int
    earliest: int
    latest: int

    def as_dict(self) -> dict:
        return asdict(self)


def plan(settings: Settings, group: str, topic: str, spec: ResetSpec, partitions: list[int] | None = None) -> list[PartitionReset]:
    if spec.kind == "offsets" and set(partitions or ()) - set(spec.offsets):
        raise InvalidInput(f"partitions {sorted(set(partitions) - set(spec.offsets))} have no offset in offsets")
    consumer = kafka.consumer(settings, group)  # never subscribes: reads the group's commits only
    try:
        wanted = partitions or (sorted(spec.offsets) if spec.kind == "offsets" else None)
        current = kafka.partition_offsets(consumer, topic, wanted)
        by_time = {}
        if spec.kind == "datetime":
            ms = int(spec.when.timestamp() * 1000)
            by_time = {tp.partition: tp.offset for tp in consumer.offsets_for_times(
                [TopicPartition(topic, po.partition, ms) for po in current], timeout=10)}
    finally:
        consumer.close()
    return [PartitionReset(po.partition, po.committed, min(max(_target(spec, po, by_time), po.low), po.high), po.low, po.high)
            for po in current]


def _target(spec: ResetSpec, po: kafka.PartitionOffsets, by_time: dict[int, int]) -> int:
    """Where the spec points in one partition, before clamping to what is available."""
    if spec.kind == "earliest":
        return po.low
    if spec.kind == "latest":
        return po.high
    if spec.kind == "datetime":
        return po.high if by_time[po.partition] < 0 else by_time[po.partition]
    if spec.kind == "offsets":
        return spec.offsets[po.partition]
    return (po.committed if po.committed is not None else po.low) + spec.shift


def active_members(settings: Settings, group: str) -> int:
    admin = kafka.admin(settings)
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return len(description.members)


def execute(settings: Settings, group: str, topic: str, resets: list[PartitionReset], wait_s: float = 0) -> None:
    """Commit the planned offsets for the group; refuses (or waits up to ``wait_s``) while it has members."""
    backoff = Backoff(1.0, 1.0, deadline_s=wait_s)
    while (members := active_members(settings, group)) > 0:
        if not backoff.sleep():
            raise Conflict(f"group {group} has {members} active member(s); stop its consumers first "
                           "(a running consumer would overwrite the reset with its next commit)")
    admin = kafka.admin(settings)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, r.partition, r.new) for r in resets])
    admin.alter_consumer_group_offsets([request])[group].result(timeout=30)


def describe(resets: list[PartitionReset]) -> str:
    lines = [f"{'PARTITION':>9}  {'CURRENT':>10}  {'NEW':>10}  {'EARLIEST':>10}  {'LATEST':>10}"]
    for r in resets:
        current = "-" if r.current is None else str(r.current)
        lines.append(f"{r.partition:>9}  {current:>10}  {r.new:>10}  {r.earliest:>10}  {r.latest:>10}")
    return "\n".join(lines)
