"""The loader's steps, each testable on its own: decode -> validate -> batch -> insert -> commit.

Exactly-once *results*: offsets are committed only after ClickHouse acknowledged the rows
before them, so a crash or rebalance can only re-deliver, never lose. A re-delivered scan
(and a phone retry, a spool re-send, a replay) produces a row with the same sorting key as
its first copy, and ``quacknet.scans`` reads ``scans_store FINAL``: copies are never counted
twice. Within a batch, copies of one ``scan_id`` are dropped before the insert (counted).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import Message, TopicPartition
from pydantic import ValidationError

from quacknet import wire
from quacknet.scan import CLICKHOUSE_TYPES, SCHEMA_VERSION, Scan, decode
from quacknet.warehouse.migrations import LINEAGE

COLUMNS = [*CLICKHOUSE_TYPES, *LINEAGE]  # the order of clickhouse_row's values (Native inserts)
ROW_COLUMNS = [*wire.FIELDS, *LINEAGE]  # the order of wire.row's values (the loader's inserts)


@dataclass(frozen=True)
class Poison:
    """A message that will never load: it goes to the dead-letter topic with the reason."""

    message: Message
    reason: str  # undecodable | schema_invalid | unknown_schema_version
    error: str


def decode_message(msg: Message) -> Scan | wire.WireScan | Poison:
    """A scan (from the fast path, or from pydantic when the fast path cannot vouch for it) or poison."""
    value = msg.value()
    if value is None:
        return Poison(msg, "undecodable", "empty message value")
    fast = wire.decode_scan(value)
    if fast is not None:
        return fast
    try:
        return decode(value)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["loc"] == ("schema_version",) for e in errors):
            return Poison(msg, "unknown_schema_version", f"schema_version is not {SCHEMA_VERSION}")
        if any(e["type"] in ("json_invalid", "json_type") for e in errors):
            return Poison(msg, "undecodable", str(exc)[:2000])
        return Poison(msg, "schema_invalid", str(exc)[:2000])


def dead_letter_headers(poison: Poison) -> list[tuple[str, bytes]]:
    msg = poison.message
    return [
        ("quacknet.error.reason", poison.reason.encode()),
        ("quacknet.error.message", poison.error.encode()),
        ("quacknet.source.topic", msg.topic().encode()),
        ("quacknet.source.partition", str(msg.partition()).encode()),
        ("quacknet.source.offset", str(msg.offset()).encode()),
    ]


def insert_rows(client, database: str, rows: bytes) -> None:
    """The one insert path into the store, for the loader and for replays alike."""
    client.raw_insert(f"{database}.scans_store", ROW_COLUMNS, rows, fmt="JSONCompactEachRow",
                      settings={"date_time_input_format": "best_effort"})


LEDGER_COLUMNS = ["topic", "partition", "first_offset", "last_offset", "source"]


def record_loaded(client, database: str, batch: "Batch", source: str) -> None:
    """After the rows are stored: note which offset range of each partition the batch covered
    (rows, poison and in-batch copies alike). The completeness audit compares these ranges with
    what Kafka holds; row lineage alone cannot, since merges drop the offsets of losing copies."""
    rows = [[topic, partition, first, last, source] for topic, partition, first, last in batch.ranges()]
    if rows:
        client.insert(f"{database}.load_ledger", rows, column_names=LEDGER_COLUMNS)


def store_batch(client, database: str, batch: "Batch", source: str) -> None:
    """Store a batch: its rows, then the ledger of the offsets it covered. The loader and replays
    both store through here; either call may be retried (copies collapse)."""
    if batch.rows:
        insert_rows(client, database, batch.json_rows())
    record_loaded(client, database, batch, source)


def dead_letter(producer, dlq_topic: str, poison: list[Poison], timeout_s: float = 30) -> int:
    """Send poison to the dead-letter topic and wait for the broker; returns how many it did not take."""
    for item in poison:
        producer.produce(dlq_topic, key=item.message.key(), value=item.message.value(), headers=dead_letter_headers(item))
    return producer.flush(timeout_s) if poison else 0


@dataclass
class Batch:
    """Rows to insert and, per partition, the next offset to commit once they are stored."""

    started: float = field(default_factory=time.monotonic)
    rows: dict = field(default_factory=dict)  # scan_id -> JSONCompactEachRow line (wire.row); the last copy wins
    poison: list[Poison] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    messages: int = 0

    def add(self, msg: Message, item: Scan | wire.WireScan | Poison) -> None:
        self.messages += 1
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        self.next_offsets[(topic, partition)] = offset + 1
        if (topic, partition) not in self.first_offsets:
            self.first_offsets[(topic, partition)] = offset
        if type(item) is Poison:
            self.poison.append(item)
        else:
            self.rows[item.scan_id] = wire.row(item, topic, partition, offset)

    def json_rows(self) -> bytes:
        return b"\n".join(self.rows.values())

    @property
    def duplicates(self) -> int:
        return self.messages - len(self.rows) - len(self.poison)

    def ready(self, max_rows: int, max_seconds: float) -> bool:
        return self.messages >= max_rows or (self.messages > 0 and time.monotonic() - self.started >= max_seconds)

    def ranges(self) -> list[tuple[str, int, int, int]]:
        """(topic, partition, first offset, last offset) consumed into this batch, per partition."""
        return [(topic, partition, first, self.next_offsets[(topic, partition)] - 1)
                for (topic, partition), first in sorted(self.first_offsets.items())]

    def commit_offsets(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition, offset) for (topic, partition), offset in sorted(self.next_offsets.items())]
