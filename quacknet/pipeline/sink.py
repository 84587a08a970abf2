"""Where a batch goes: its rows into the store, its offset ranges into the load ledger, its poison
onto the dead-letter topic. The one write path for the loader and replays alike.

Exactly-once *results*: a driver commits (or reports) a batch only after ``store`` and
``dead_letter`` succeeded, so a crash can only re-deliver, never lose. The store is keyed by
``scan_id`` alone, so a re-delivered scan (and a phone retry, a spool re-send, a replay) collapses
into one row with its other copies whatever they differ in, and ``quacknet.scans`` reads
``scans_store FINAL``: copies are never counted twice.

Conflicting copies (same ``scan_id``, other contents) are counted as the sink stores them: copies in
one batch, and copies of scans this sink stored lately (``RecentScans``: a bounded memory of
scan_ids, so that only the few scans seen again are looked up; looking every scan up would read
the whole store for each batch). The record of every copy is ``<db>.scan_copies`` (``scan_lineage``).
"""

from __future__ import annotations

import uuid
from operator import attrgetter

from confluent_kafka import Producer

from quacknet import kafka, warehouse
from quacknet.errors import QuackNetError
from quacknet.logs import get_logger
from quacknet.pipeline.batch import Batch
from quacknet.pipeline.decode import Poison
from quacknet.scan import ROW_COLUMNS
from quacknet.settings import Settings

log = get_logger(__name__)

LEDGER_COLUMNS = ["topic", "partition", "first_offset", "last_offset", "source"]
# A batch spanning many months writes many partitions: the server's default (refuse more than 100
# per insert, as TOO_MANY_PARTS, which is retriable) would hold the loader on one batch for ever.
# On a cluster (a Distributed scans_store) the insert returns only once every shard has its rows:
# otherwise it would be acknowledged, and the offsets committed, while the rows wait in a local queue.
INSERT_SETTINGS = {"date_time_input_format": "best_effort", "throw_on_max_partitions_per_insert_block": 0,
                   "distributed_foreground_insert": 1}
_UUID_INT = attrgetter("int")
RECENT_SCANS = 500_000  # scan_ids a sink remembers (at least half of them), to notice copies (at most about 35 MB)
# Sets of scan_ids go to the server as a temporary table of the client's session (a parameter
# would put them in the request line or a form field, which servers and proxies bound); GLOBAL IN
# ships it to the shards of a cluster.
IDS_TABLE = "_quacknet_scan_ids"
CONTENTS = f"""SELECT scan_id, uniqExact(content_hash) FROM {{db:Identifier}}.scan_copies
WHERE scan_id GLOBAL IN (SELECT scan_id FROM {IDS_TABLE}) GROUP BY scan_id"""
HELD = f"SELECT uniqExact(scan_id) FROM {{db:Identifier}}.scans WHERE scan_id GLOBAL IN (SELECT scan_id FROM {IDS_TABLE})"


class RecentScans:
    """The scan_ids stored lately: at least the last ``capacity / 2``, at most ``capacity``. Two
    generations of sets of the ids' integer hashes, the older dropped whole when the newer fills:
    a batch costs a few C-level set operations (the insert thread shares the GIL with decoding)."""

    def __init__(self, capacity: int = RECENT_SCANS):
        self.generation = capacity // 2
        self._new: set[int] = set()
        self._old: set[int] = set()

    @staticmethod
    def keys(scan_ids: list[uuid.UUID]) -> list[int]:
        return list(map(hash, map(_UUID_INT, scan_ids)))

    def seen(self, scan_ids: list[uuid.UUID], keys: list[int]) -> list[uuid.UUID]:
        hits = self._new.intersection(keys) | self._old.intersection(keys)
        return [s for s, k in zip(scan_ids, keys, strict=True) if k in hits] if hits else []

    def remember(self, keys: list[int]) -> None:
        self._new.update(keys)
        if len(self._new) >= self.generation:
            self._old, self._new = self._new, set()

    def __len__(self) -> int:
        return len(self._new | self._old)


def dead_letter_headers(poison: Poison) -> list[tuple[str, bytes]]:
    msg = poison.message
    return [
        ("quacknet.error.reason", poison.reason.encode()),
        ("quacknet.error.message", poison.error.encode()),
        ("quacknet.source.topic", msg.topic().encode()),
        ("quacknet.source.partition", str(msg.partition()).encode()),
        ("quacknet.source.offset", str(msg.offset()).encode()),
    ]


class Sink:
    """A ClickHouse client and a dead-letter producer, for one driver. ``source`` labels the
    ledger entries (``loader``, ``replay:<run id>``)."""

    def __init__(self, settings: Settings, source: str, database: str | None = None):
        self.settings = settings
        self.source = source
        self.database = database or settings.clickhouse_database
        self.client = warehouse.client(settings)
        self.dlq: Producer = kafka.producer(settings)
        self.recent = RecentScans()

    def store(self, batch: Batch) -> None:
        """Rows first, then the ledger of the offsets the batch covered (rows, poison and in-batch
        copies alike; the completeness audit needs ranges, which merges would erase from rows).
        Either may be repeated: copies collapse. Sets ``batch.conflicting``: superseded copies whose
        contents differed, among the scans copied within the batch or stored lately by this sink.
        Raises ``Unavailable`` or ``warehouse.Refused``."""
        table = f"{self.database}.scans_store"
        scan_ids = batch.scan_ids()
        keys = self.recent.keys(scan_ids)
        try:
            again = sorted({*batch.differing, *self.recent.seen(scan_ids, keys)})
            if again and batch.stored_contents is None:
                batch.stored_contents = self._contents(again)
            if batch.rows:
                self.client.raw_insert(table, ROW_COLUMNS, batch.json_rows(), fmt="JSONCompactEachRow",
                                       settings=INSERT_SETTINGS)
            ledger = [[topic, partition, first, last, self.source] for topic, partition, first, last in batch.ranges()]
            if ledger:
                self.client.insert(f"{self.database}.load_ledger", ledger, column_names=LEDGER_COLUMNS)
            if again:
                before, after = batch.stored_contents, self._contents(again)
                # each scan's contents beyond its first: the superseded copies that differed
                batch.conflicting = sum(max(0, n - max(1, before.get(s, 0))) for s, n in after.items())
        except warehouse.ClickHouseDriverError as exc:
            raise warehouse.failure(exc, f"storing {batch.messages} messages into {table}") from exc
        self.recent.remember(keys)

    def held(self, scan_ids: list[uuid.UUID]) -> int:
        """How many of these scans the exact view holds (a replay's measure of what it added)."""
        try:
            return self._over_ids(scan_ids, HELD)[0][0]
        except warehouse.ClickHouseDriverError as exc:
            raise warehouse.failure(exc, f"looking up {len(scan_ids)} scans in {self.database}.scans") from exc

    def _contents(self, scan_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """How many different contents each scan's stored copies have."""
        return dict(self._over_ids(scan_ids, CONTENTS))

    def _over_ids(self, scan_ids: list[uuid.UUID], sql: str) -> list:
        self.client.command(f"CREATE TEMPORARY TABLE IF NOT EXISTS {IDS_TABLE} (scan_id UUID) ENGINE = Memory")
        self.client.command(f"TRUNCATE TABLE {IDS_TABLE}")
        self.client.insert(IDS_TABLE, [[s] for s in scan_ids], column_names=["scan_id"])
        return self.client.query(sql, parameters={"db": self.database}).result_rows

    def dead_letter(self, poison: list[Poison], timeout_s: float = 30) -> int:
        """Send poison to the dead-letter topic and wait for the broker; returns how many it did not take."""
        if not poison:
            return 0
        for item in poison:
            self.dlq.produce(self.settings.dlq_topic, key=item.message.key(), value=item.message.value(),
                             headers=dead_letter_headers(item))
        return self.dlq.flush(timeout_s)

    def reconnect(self) -> None:
        """A fresh ClickHouse client after a failure (the old one's connections may be dead)."""
        try:
            self.client.close()
        except Exception:  # closing a broken client must not stop the retry
            pass
        try:
            self.client = warehouse.client(self.settings)
        except QuackNetError as exc:  # the next store attempt fails and is classified again
            log.warning("pipeline.reconnect_failed", error=str(exc)[:300])

    def close(self) -> None:
        self.dlq.flush(10)
        self.client.close()
