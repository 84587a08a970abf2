"""Replay a time or offset range of the scans topic into ClickHouse.

``plan`` turns a time range (broker time: the topic uses LogAppendTime) or explicit offsets into
per-partition offset ranges [start, end) and refuses a range whose start retention already
deleted, rather than silently starting later. ``copy`` reads exactly those ranges with its own
consumer (assign, never commit: the live loader's group is untouched) and writes them through
the loader's own steps (decode, poison to the DLQ, JSONEachRow rows with lineage), so a replay
can never write a row the loader would not; copies collapse in ``quacknet.scans``, so replaying
twice changes nothing. ``already present`` and ``inserted`` are measured on the exact view.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import OFFSET_END, TopicPartition

from quacknet import kafka, warehouse
from quacknet.loader.steps import Batch, dead_letter, decode_message, store_batch
from quacknet.logs import get_logger
from quacknet.settings import Settings
from quacknet.warehouse.migrations import migrate

log = get_logger(__name__)


class ReplayError(RuntimeError):
    """The request cannot be replayed as asked (the message says which partition and why)."""


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
    read: int
    inserted: int
    already_present: int
    dead_lettered: int
    duplicates_in_batch: int


def parse_time(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(f"{name}={value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ReplayError(f"{name}={value!r} has no timezone; give UTC, e.g. 2026-11-26T12:00:00Z")
    return parsed


def plan_arguments(params: dict) -> dict:
    """The replay form's params as ``plan`` keyword arguments (a readable error for a bad form)."""
    partitions = [int(p) for p in params.get("partitions") or []] or None
    if params.get("start_time"):
        end = params.get("end_time")
        return {"start_time": parse_time(params["start_time"], "start_time"),
                "end_time": parse_time(end, "end_time") if end else None, "partitions": partitions}
    raw = params.get("offsets") or {}
    if not raw:
        raise ReplayError("give a time range (start_time) or explicit offsets")
    try:
        offsets = {int(p): (int(r[0]), int(r[1])) for p, r in raw.items()}
    except (TypeError, ValueError, IndexError, KeyError):
        raise ReplayError(f'offsets must look like {{"0": [start, end]}}, got {raw!r}') from None
    return {"offsets": offsets, "partitions": partitions}


def _ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        raise ReplayError(f"{value.isoformat()} has no timezone; give UTC times")
    return int(value.timestamp() * 1000)


def plan(settings: Settings, topic: str, *, start_time: dt.datetime | None = None, end_time: dt.datetime | None = None,
         offsets: dict[int, tuple[int, int]] | None = None, partitions: list[int] | None = None) -> list[PartitionRange]:
    """Offset ranges per partition, from a time range or explicit {partition: (start, end)}."""
    if (offsets is None) == (start_time is None):
        raise ReplayError("give either a time range (start_time, end_time) or explicit offsets, not both or neither")
    consumer = kafka.consumer(settings, f"replay-plan-{uuid.uuid4().hex[:8]}")
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise ReplayError(f"topic {topic} does not exist")
        chosen = sorted(partitions) if partitions else sorted(offsets or meta.partitions)
        unknown = [p for p in chosen if p not in meta.partitions]
        if unknown:
            raise ReplayError(f"topic {topic} has no partition(s) {unknown}")
        ranges = []
        if offsets is None:
            if end_time is not None and end_time <= start_time:
                raise ReplayError("end_time must be after start_time")
            starts = consumer.offsets_for_times([TopicPartition(topic, p, _ms(start_time)) for p in chosen], timeout=10)
            ends = (consumer.offsets_for_times([TopicPartition(topic, p, _ms(end_time)) for p in chosen], timeout=10)
                    if end_time else [TopicPartition(topic, p, OFFSET_END) for p in chosen])
        for i, p in enumerate(chosen):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if offsets is None:
                start = high if starts[i].offset < 0 else starts[i].offset
                end = high if ends[i].offset < 0 else ends[i].offset
                # offsets_for_times answers from what is still stored: a start time older than the
                # oldest stored message lands on it. That is data loss the operator must see.
                if start == low and low > 0 and _first_timestamp(consumer, topic, p, low) > _ms(start_time):
                    raise ReplayError(f"partition {p}: messages from {start_time.isoformat()} up to offset {low} "
                                      "were already deleted by retention; start later or replay explicit offsets")
            else:
                start, end = offsets[p]
                if start < low:
                    raise ReplayError(f"partition {p}: offset {start} was deleted by retention (earliest available {low})")
                if end > high or start > end:
                    raise ReplayError(f"partition {p}: range [{start}, {end}) is outside [{low}, {high})")
            ranges.append(PartitionRange(p, start, end, low))
        return ranges
    finally:
        consumer.close()


def _first_timestamp(consumer, topic: str, partition: int, offset: int) -> int:
    stamp = kafka.timestamp_at(consumer, topic, partition, offset)
    if stamp is None:
        raise ReplayError(f"partition {partition}: could not read offset {offset}")
    return stamp


def copy(settings: Settings, topic: str, ranges: list[PartitionRange], database: str | None = None,
         progress: Callable[[int, int], None] | None = None, batch_rows: int = 50_000,
         source: str = "replay") -> ReplayResult:
    """Copy the planned ranges into ClickHouse exactly once (safe to repeat, safe beside the loader).
    ``source`` labels this copy's ranges in the load ledger (the DAG passes ``replay:<run id>``)."""
    database = database or settings.clickhouse_database
    todo = [r for r in ranges if r.messages]
    total = sum(r.messages for r in todo)
    client = warehouse.client(settings)
    migrate(client, database)
    before = _present(client, database, topic, todo)
    consumer = kafka.consumer(settings, f"replay-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
    dlq = kafka.producer(settings)
    read = dead = dups = 0
    try:
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
                store_batch(client, database, batch, source)
                if dead_letter(dlq, settings.dlq_topic, batch.poison) != 0:
                    raise ReplayError(f"the dead-letter topic {settings.dlq_topic} did not take "
                                      f"{len(batch.poison)} poison message(s); nothing is lost, run the replay again")
                read, dead, dups = read + batch.messages, dead + len(batch.poison), dups + batch.duplicates
                batch = Batch()
                log.info("replay.progress", read=read, total=total, percent=round(100 * read / max(total, 1), 1))
                if progress:
                    progress(read, total)
    finally:
        consumer.close()
    after = _present(client, database, topic, todo)
    client.close()
    return ReplayResult(read=read, inserted=after - before, already_present=before, dead_lettered=dead,
                        duplicates_in_batch=dups)


def _present(client, database: str, topic: str, ranges: list[PartitionRange]) -> int:
    """Distinct scans in the exact view whose lineage lies in the ranges."""
    if not ranges:
        return 0
    cond = " OR ".join(f"(kafka_partition = {r.partition} AND kafka_offset >= {r.start} AND kafka_offset < {r.end})"
                       for r in ranges)
    return client.query(f"SELECT uniqExact(scan_id) FROM {database}.scans WHERE kafka_topic = {{t:String}} AND ({cond})",
                        parameters={"t": topic}).result_rows[0][0]
