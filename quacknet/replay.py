"""Replay a time or offset range of the scans topic into ClickHouse: the second driver of the pipeline.

``plan`` turns a time range (broker time: the topic uses LogAppendTime) or explicit offsets into
per-partition offset ranges [start, end), and refuses a range whose start retention already
deleted rather than silently starting later. ``copy`` reads exactly those ranges with its own
consumer (assign, never commit: the live loader's group is untouched) and writes them through the
same pipeline as the loader (``quacknet.pipeline``), so a replay can never write a row the loader
would not. Copies collapse in ``quacknet.scans``: replaying twice changes nothing. ``inserted`` and
``already present`` are measured on the exact view: before each batch is stored, which of its
scans the view holds (by scan_id: a copy of a scan stored from elsewhere, even one that differs,
makes the scan present).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from confluent_kafka import OFFSET_END, TopicPartition

from quacknet import kafka
from quacknet import params as p
from quacknet.errors import InvalidInput, Unavailable
from quacknet.logs import get_logger
from quacknet.pipeline import Batch, Sink, decode_message
from quacknet.settings import Settings
from quacknet.warehouse.migrations import require_current

log = get_logger(__name__)

BATCH_ROWS = 50_000


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int  # first offset to copy
    end: int  # one past the last offset to copy
    earliest_available: int

    @property
    def messages(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class ReplayResult:
    """Every message read is counted once: ``read == inserted + already_present +
    duplicates_in_batch + dead_lettered``."""

    read: int
    inserted: int  # scans the view did not hold before
    already_present: int  # stored rows whose scan the view already held
    dead_lettered: int
    duplicates_in_batch: int  # copies of a scan_id dropped inside a batch before the insert

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"read {self.read:,} = inserted {self.inserted:,} + already present {self.already_present:,} "
                f"+ duplicates within batches {self.duplicates_in_batch:,} + dead-lettered {self.dead_lettered:,}")


def describe_plan(topic: str, ranges: list[PartitionRange], start_time: dt.datetime | None = None,
                  end_time: dt.datetime | None = None) -> list[str]:
    """The plan as an operator checks it: the window as interpreted (UTC, broker time), then offsets."""
    if start_time is not None:
        until = end_time.astimezone(dt.UTC).isoformat() if end_time else "the end of each partition"
        window = f"broker time {start_time.astimezone(dt.UTC).isoformat()} to {until} (UTC)"
    else:
        window = "explicit offsets"
    lines = [f"replay of {topic}: {window}", f"{'PARTITION':>9}  {'START':>12}  {'END':>12}  {'MESSAGES':>10}"]
    lines += [f"{r.partition:>9}  {r.start:>12}  {r.end:>12}  {r.messages:>10}" for r in ranges]
    lines.append(f"{'total':>9}  {'':>12}  {'':>12}  {sum(r.messages for r in ranges):>10}")
    return lines


def plan_arguments(params: dict) -> dict:
    """The replay form's params as ``plan`` keyword arguments: a time range or explicit offsets,
    never both (a readable ``InvalidInput`` for anything else)."""
    partitions = p.partitions(params.get("partitions"))
    raw = p.mapping(params.get("offsets"), "offsets")
    start = p.optional_time(params.get("start_time"), "start_time")
    end = p.optional_time(params.get("end_time"), "end_time")
    if start is not None and raw:
        raise InvalidInput("give either a time range (start_time) or explicit offsets, not both")
    if start is not None:
        return {"start_time": start, "end_time": end, "partitions": partitions}
    if end is not None:
        raise InvalidInput("end_time needs a start_time")
    if not raw:
        raise InvalidInput('give a time range (start_time) or explicit offsets ({"0": [start, end]})')
    offsets = {}
    for key, value in raw.items():
        partition = p.partition_key(key, "offsets")
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidInput(f'offsets["{key}"] must be [start, end] (two integers), got {value!r}')
        offsets[partition] = (p.integer(value[0], f'offsets["{key}"] start', minimum=0),
                              p.integer(value[1], f'offsets["{key}"] end', minimum=0))
    missing = sorted(set(partitions or ()) - set(offsets))
    if missing:
        raise InvalidInput(f"partitions {missing} are listed in partitions but have no range in offsets")
    return {"offsets": offsets, "partitions": partitions}


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def plan(settings: Settings, topic: str, *, start_time: dt.datetime | None = None, end_time: dt.datetime | None = None,
         offsets: dict[int, tuple[int, int]] | None = None, partitions: list[int] | None = None) -> list[PartitionRange]:
    """Offset ranges per partition, from a time range or explicit {partition: (start, end)}."""
    if (offsets is None) == (start_time is None):
        raise InvalidInput("give either a time range (start_time, end_time) or explicit offsets, not both or neither")
    if end_time is not None and start_time is None:
        raise InvalidInput("end_time needs a start_time")
    if end_time is not None and end_time <= start_time:
        raise InvalidInput("end_time must be after start_time")
    if offsets is not None and set(partitions or ()) - set(offsets):
        raise InvalidInput(f"partitions {sorted(set(partitions) - set(offsets))} have no range in offsets")
    consumer = kafka.consumer(settings, f"replay-plan-{uuid.uuid4().hex[:8]}")
    try:
        chosen = kafka.resolve_partitions(consumer, topic, partitions or (sorted(offsets) if offsets else None))
        if offsets is not None:
            return [_explicit(consumer, topic, part, *offsets[part]) for part in chosen]
        return _by_time(consumer, topic, chosen, start_time, end_time)
    finally:
        consumer.close()


def _explicit(consumer, topic: str, partition: int, start: int, end: int) -> PartitionRange:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    if start > end:
        raise InvalidInput(f"partition {partition}: range [{start}, {end}) ends before it starts")
    if start < low:
        raise InvalidInput(f"partition {partition}: offset {start} was deleted by retention (earliest available {low})")
    if end > high:
        raise InvalidInput(f"partition {partition}: range [{start}, {end}) is outside [{low}, {high})")
    return PartitionRange(partition, start, end, low)


def _by_time(consumer, topic: str, chosen: list[int], start_time: dt.datetime,
             end_time: dt.datetime | None) -> list[PartitionRange]:
    starts = consumer.offsets_for_times([TopicPartition(topic, q, _ms(start_time)) for q in chosen], timeout=10)
    ends = (consumer.offsets_for_times([TopicPartition(topic, q, _ms(end_time)) for q in chosen], timeout=10)
            if end_time else [TopicPartition(topic, q, OFFSET_END) for q in chosen])
    ranges = []
    for partition, first, last in zip(chosen, starts, ends, strict=True):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        start = high if first.offset < 0 else first.offset
        end = high if last.offset < 0 else last.offset
        # offsets_for_times answers from what is still stored: a start time older than the oldest
        # stored message lands on it. That is data loss the operator must see.
        if start == low and low > 0 and _first_timestamp(consumer, topic, partition, low) > _ms(start_time):
            raise InvalidInput(f"partition {partition}: messages from {start_time.isoformat()} up to offset {low} "
                               "were already deleted by retention; start later or replay explicit offsets")
        ranges.append(PartitionRange(partition, start, end, low))
    return ranges


def _first_timestamp(consumer, topic: str, partition: int, offset: int) -> int:
    stamp = kafka.timestamp_at(consumer, topic, partition, offset)
    if stamp is None:
        raise Unavailable(f"partition {partition}: could not read offset {offset}")
    return stamp


def copy(settings: Settings, topic: str, ranges: list[PartitionRange], database: str | None = None,
         progress: Callable[[int, int], None] | None = None, batch_rows: int = BATCH_ROWS,
         source: str = "replay") -> ReplayResult:
    """Copy the planned ranges into ClickHouse exactly once (safe to repeat, safe beside the loader).
    ``source`` labels this copy's ranges in the load ledger (the DAG passes ``replay:<run id>``)."""
    todo = [r for r in ranges if r.messages]
    total = sum(r.messages for r in todo)
    sink = Sink(settings, source, database)
    consumer = kafka.consumer(settings, f"replay-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
    read = dead = dups = inserted = 0
    try:
        require_current(sink.client, sink.database)
        consumer.assign([TopicPartition(topic, r.partition, r.start) for r in todo])
        remaining = {r.partition: r.end for r in todo}
        batch = Batch()
        while remaining:
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error() or msg.partition() not in remaining or msg.offset() >= remaining[msg.partition()]:
                    continue
                batch.add(msg, decode_message(msg))
                if msg.offset() + 1 >= remaining[msg.partition()]:
                    del remaining[msg.partition()]
            if batch.messages >= batch_rows or (batch.messages and not remaining):
                scans = batch.scan_ids()
                inserted += len(scans) - (sink.held(scans) if scans else 0)  # what the view lacked before
                sink.store(batch)
                if sink.dead_letter(batch.poison) != 0:
                    raise Unavailable(f"the dead-letter topic {settings.dlq_topic} did not take {len(batch.poison)} "
                                      "poison message(s); nothing is lost, run the replay again")
                read, dead, dups = read + batch.messages, dead + len(batch.poison), dups + batch.duplicates
                batch = Batch()
                log.info("replay.progress", read=read, total=total, percent=round(100 * read / max(total, 1), 1))
                if progress:
                    progress(read, total)
    finally:
        consumer.close()
        sink.close()
    return ReplayResult(read=read, inserted=inserted, already_present=read - dups - dead - inserted, dead_lettered=dead,
                        duplicates_in_batch=dups)
