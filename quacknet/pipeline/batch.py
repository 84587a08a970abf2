"""A batch: the rows to insert and, per partition, the offsets it covers.

Copies of one ``scan_id`` inside a batch are dropped before the insert (the last copy wins,
counted as ``duplicates``); copies across batches collapse in the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import Message, TopicPartition

from quacknet.pipeline.decode import Poison
from quacknet.scan import Scan, WireScan, row


@dataclass
class Batch:
    started: float = field(default_factory=time.monotonic)
    rows: dict = field(default_factory=dict)  # scan_id -> JSONCompactEachRow line (codec.row); the last copy wins
    poison: list[Poison] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    messages: int = 0

    def add(self, msg: Message, item: Scan | WireScan | Poison) -> None:
        self.messages += 1
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        self.next_offsets[(topic, partition)] = offset + 1
        if (topic, partition) not in self.first_offsets:
            self.first_offsets[(topic, partition)] = offset
        if type(item) is Poison:
            self.poison.append(item)
        else:
            self.rows[item.scan_id] = row(item, topic, partition, offset)

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
