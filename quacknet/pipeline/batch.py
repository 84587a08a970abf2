"""A batch: the rows to insert and, per partition, the offsets it covers.

Copies of one ``scan_id`` inside a batch: of copies with the same contents only the one the store
would keep is inserted (the latest ``received_at``, then the higher Kafka partition and offset: the
store's version), the others are dropped and counted as ``duplicates``. Copies whose contents
differ are all inserted: the store keeps the winner, and the copies' lineage (``scan_copies``)
records that a phone sent conflicting copies. Copies across batches collapse in the store.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import Message, TopicPartition

from quacknet.pipeline.decode import Poison
from quacknet.scan import FIELDS, Scan, WireScan, row

_RECEIVED = FIELDS.index("received_at")
_LINE = msgspec.json.Decoder()


def _contents_and_rank(line: bytes) -> tuple[list, tuple]:
    """A row's contents (its values but ``received_at`` and lineage) and its rank among copies:
    the store's version order, (received_at, Kafka partition, Kafka offset)."""
    values = _LINE.decode(line)
    fields, (_topic, partition, offset) = values[:len(FIELDS)], values[len(FIELDS):]
    received = dt.datetime.fromisoformat(fields[_RECEIVED])
    return fields[:_RECEIVED] + fields[_RECEIVED + 1:], (received, partition, offset)


@dataclass
class Batch:
    started: float = field(default_factory=time.monotonic)
    # scan_id -> JSONCompactEachRow line (codec.row) of its first kept copy; (scan_id, n) -> the n-th
    # further copy whose contents differ from every other kept one
    rows: dict = field(default_factory=dict)
    poison: list[Poison] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    messages: int = 0
    differing: dict[uuid.UUID, int] = field(default_factory=dict)  # scan_id -> further copies kept
    # Filled in by the sink: the contents already stored of the scans it had to look at (kept
    # across a retried store), and how many superseded copies with other contents it found.
    stored_contents: dict | None = None
    conflicting: int = 0

    def add(self, msg: Message, item: Scan | WireScan | Poison) -> None:
        self.messages += 1
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        self.next_offsets[(topic, partition)] = offset + 1
        if (topic, partition) not in self.first_offsets:
            self.first_offsets[(topic, partition)] = offset
        if type(item) is Poison:
            self.poison.append(item)
            return
        line = row(item, topic, partition, offset)
        if item.scan_id in self.rows:
            self._another_copy(item.scan_id, line)
        else:
            self.rows[item.scan_id] = line

    def _another_copy(self, scan_id: uuid.UUID, line: bytes) -> None:
        contents, rank = _contents_and_rank(line)
        keys = [scan_id, *((scan_id, n) for n in range(1, self.differing.get(scan_id, 0) + 1))]
        for key in keys:
            kept_contents, kept_rank = _contents_and_rank(self.rows[key])
            if kept_contents == contents:
                if rank > kept_rank:
                    self.rows[key] = line
                return
        n = self.differing[scan_id] = self.differing.get(scan_id, 0) + 1
        self.rows[(scan_id, n)] = line

    def scan_ids(self) -> list[uuid.UUID]:
        """Each scan in the batch once."""
        return [key for key in self.rows if type(key) is not tuple]

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
