"""The long-running loader: consume, batch, insert, commit — and nothing lost or doubled.

- Offsets are committed (synchronously) only after ClickHouse acknowledged the batch and the
  batch's poison messages are on the dead-letter topic.
- While ClickHouse is slow or down the consumer is paused (it stays in the group), the insert
  is retried with capped exponential backoff, and nothing is committed past what is stored.
- On a rebalance the batch is flushed before partitions are given up; if that fails, the
  revoked partitions' part is dropped (the new owner re-reads it from the committed offset).
- SIGTERM: stop consuming, flush the batch, commit, close. ``kill -9``: the uncommitted tail is
  re-delivered on restart and collapses onto the rows already stored.
"""

from __future__ import annotations

import signal
import threading
import time

from confluent_kafka import KafkaError, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from quacknet import kafka, warehouse
from quacknet.loader.steps import Batch, dead_letter, decode_message, insert_rows
from quacknet.logs import get_logger
from quacknet.settings import Settings
from quacknet.warehouse.migrations import migrate

log = get_logger(__name__)


class LoaderMetrics:
    def __init__(self, registry: CollectorRegistry):
        kw = {"registry": registry}
        self.consumed = Counter("quacknet_loader_consumed", "Messages consumed", **kw)
        self.inserted = Counter("quacknet_loader_inserted", "Rows inserted into ClickHouse", **kw)
        self.duplicates = Counter("quacknet_loader_duplicates_dropped", "Copies of a scan_id dropped within a batch", **kw)
        self.dead_lettered = Counter("quacknet_loader_dead_lettered", "Poison messages sent to the DLQ", ["reason"], **kw)
        self.insert_failures = Counter("quacknet_loader_insert_failures", "Failed insert attempts (retried)", **kw)
        self.batch_rows = Histogram("quacknet_loader_batch_rows", "Messages per batch",
                                    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000), **kw)
        self.batch_seconds = Histogram("quacknet_loader_insert_seconds", "Insert latency per batch", **kw)
        self.lag = Gauge("quacknet_loader_lag", "Messages behind the end of each partition", ["topic", "partition"], **kw)


class Loader:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None, group: str | None = None):
        self.settings = settings
        self.database = settings.clickhouse_database
        self.metrics = LoaderMetrics(registry or CollectorRegistry())
        self.stop_event = threading.Event()
        # Prefetch is bounded (librdkafka's default is 64 MiB per partition) so a backlog cannot inflate RSS.
        self.consumer = kafka.consumer(settings, group or settings.loader_group, **{"queued.max.messages.kbytes": 8192})
        self.dlq = kafka.producer(settings)
        self.client = warehouse.client(settings)
        self.batch = Batch()
        self._assigned: set[tuple[str, int]] = set()
        self._last_lag = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self) -> None:
        migrate(self.client, self.database)
        self.consumer.subscribe([self.settings.scans_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("loader.started", topic=self.settings.scans_topic, database=self.database)
        try:
            while not self.stop_event.is_set():
                for msg in self.consumer.consume(num_messages=min(self.settings.loader_batch_rows, 10_000), timeout=0.2):
                    self._take(msg)
                if self.batch.ready(self.settings.loader_batch_rows, self.settings.loader_batch_seconds):
                    self.flush()
                self._report_lag()
            self.flush()  # SIGTERM: what is consumed gets stored and committed
        finally:
            self.consumer.close()
            self.dlq.flush(10)
            self.client.close()
            log.info("loader.stopped")

    def stop(self, *_args) -> None:
        self.stop_event.set()

    # -- steps -----------------------------------------------------------------------------------

    def _take(self, msg) -> None:
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log.warning("loader.consume_error", error=msg.error().str())
            return
        self.metrics.consumed.inc()
        self.batch.add(msg, decode_message(msg))

    def flush(self, attempts: int | None = None) -> bool:
        """Insert the batch (retrying with backoff), dead-letter its poison, then commit."""
        batch = self.batch
        if batch.messages == 0:
            return True
        if batch.rows and not self._insert(batch.json_rows(), attempts):
            return False
        if dead_letter(self.dlq, self.settings.dlq_topic, batch.poison) != 0:
            log.error("loader.dlq_not_acknowledged", count=len(batch.poison))
            return False  # not committed: the poison is re-read and dead-lettered again
        for poison in batch.poison:
            self.metrics.dead_lettered.labels(poison.reason).inc()
        self.consumer.commit(offsets=batch.commit_offsets(), asynchronous=False)
        self.metrics.inserted.inc(len(batch.rows))
        self.metrics.duplicates.inc(batch.duplicates)
        self.metrics.batch_rows.observe(batch.messages)
        log.info("loader.batch", messages=batch.messages, rows=len(batch.rows), poison=len(batch.poison),
                 duplicates=batch.duplicates)
        self.batch = Batch()
        return True

    def _insert(self, rows: bytes, attempts: int | None) -> bool:
        delay, tried = 0.2, 0
        paused = False
        while True:
            tried += 1
            t0 = time.perf_counter()
            try:
                insert_rows(self.client, self.database, rows)
                self.metrics.batch_seconds.observe(time.perf_counter() - t0)
                if paused:
                    self.consumer.resume(self.consumer.assignment())
                return True
            except Exception as exc:  # ClickHouse down, slow or refusing: wait, never commit past it
                self.metrics.insert_failures.inc()
                log.warning("loader.insert_failed", attempt=tried, retry_in_s=delay, error=str(exc)[:300])
                if attempts is not None and tried >= attempts:
                    return False
                if self.stop_event.is_set() and tried >= 3:
                    return False
                if not paused:
                    self.consumer.pause(self.consumer.assignment())
                    paused = True
                self.consumer.poll(delay)  # paused: returns nothing, keeps us in the group
                delay = min(delay * 2, self.settings.loader_retry_max_s)
                self._reconnect()

    def _reconnect(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass
        try:
            self.client = warehouse.client(self.settings)
        except Exception as exc:
            log.warning("loader.reconnect_failed", error=str(exc)[:300])

    # -- rebalances and lag ----------------------------------------------------------------------

    def _on_assign(self, consumer, partitions) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("loader.assigned", partitions=sorted(p.partition for p in partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        if not self.flush(attempts=3):
            self.batch.forget(revoked)
        self._assigned -= revoked
        log.info("loader.revoked", partitions=sorted(p for _, p in revoked))

    def _report_lag(self) -> None:
        if time.monotonic() - self._last_lag < 5:
            return
        self._last_lag = time.monotonic()
        for topic, partition in list(self._assigned):
            tp = TopicPartition(topic, partition)
            try:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                position = self.consumer.position([tp])[0].offset
            except Exception:
                continue
            if high >= 0 and position >= 0:
                self.metrics.lag.labels(topic, str(partition)).set(max(0, high - position))


def main() -> None:
    from quacknet.logs import configure_logging

    settings = Settings()
    configure_logging(settings)
    registry = CollectorRegistry()
    start_http_server(settings.loader_metrics_port, addr=settings.loader_metrics_host, registry=registry)
    loader = Loader(settings, registry)
    signal.signal(signal.SIGTERM, loader.stop)
    signal.signal(signal.SIGINT, loader.stop)
    loader.run()
