"""Where a batch goes: its rows into the store, its offset ranges into the load ledger, its poison
onto the dead-letter topic. The one write path for the loader and replays alike.

Exactly-once *results*: a driver commits (or reports) a batch only after ``store`` and
``dead_letter`` succeeded, so a crash can only re-deliver, never lose. A re-delivered scan (and a
phone retry, a spool re-send, a replay) produces a row with the same sorting key as its first
copy, and ``quacknet.scans`` reads ``scans_store FINAL``: copies are never counted twice.
"""

from __future__ import annotations

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
INSERT_SETTINGS = {"date_time_input_format": "best_effort", "throw_on_max_partitions_per_insert_block": 0}


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

    def store(self, batch: Batch) -> None:
        """Rows first, then the ledger of the offsets the batch covered (rows, poison and in-batch
        copies alike; the completeness audit needs ranges, which merges would erase from rows).
        Either may be repeated: copies collapse. Raises ``Unavailable`` or ``warehouse.Refused``."""
        table = f"{self.database}.scans_store"
        try:
            if batch.rows:
                self.client.raw_insert(table, ROW_COLUMNS, batch.json_rows(), fmt="JSONCompactEachRow",
                                       settings=INSERT_SETTINGS)
            ledger = [[topic, partition, first, last, self.source] for topic, partition, first, last in batch.ranges()]
            if ledger:
                self.client.insert(f"{self.database}.load_ledger", ledger, column_names=LEDGER_COLUMNS)
        except warehouse.ClickHouseDriverError as exc:
            raise warehouse.failure(exc, f"storing {batch.messages} messages into {table}") from exc

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
