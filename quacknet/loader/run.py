"""The long-running loader: consume, batch, insert, commit — and nothing lost or doubled.

- Offsets are committed (synchronously) only after ClickHouse acknowledged the batch and the
  batch's poison messages are on the dead-letter topic.
- While ClickHouse is slow or down the consumer is paused (it stays in the group), the insert
  is retried with capped exponential backoff, and nothing is committed past what is stored.
- One batch is inserted on a worker thread while the next is consumed and decoded; its offsets
  are committed (by the consumer's thread) before the next batch is shipped.
- On a rebalance the batches are flushed before partitions are given up; if that fails, they
  are dropped from memory (the new owner re-reads them from the committed offset).
- SIGTERM: stop consuming, flush the batch, commit, close. ``kill -9``: the uncommitted tail is
  re-delivered on restart and collapses onto the rows already stored.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from quacknet import kafka, warehouse
from quacknet.loader.steps import Batch, dead_letter, decode_message, store_batch
from quacknet.logs import get_logger
from quacknet.runtime import tune_gc
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
        # Prefetch is bounded (librdkafka's default is 64 MiB per partition) so a backlog cannot inflate
        # RSS; and when that bound is reached, librdkafka waits fetch.queue.backoff.ms (1 s by default)
        # before fetching again, which starved the loader (35k -> 48k scans/s with 20 ms, bench).
        # A loader killed with -9 keeps its partitions until its session times out (librdkafka: 45 s);
        # 10 s bounds that stall (heartbeats run on librdkafka's own thread, so long inserts are fine).
        self.consumer = kafka.consumer(settings, group or settings.loader_group, **{
            "queued.max.messages.kbytes": 8192, "fetch.queue.backoff.ms": 20, "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 2_000})
        self.dlq = kafka.producer(settings)
        self.client = warehouse.client(settings)
        self.batch = Batch()
        # One batch is inserted (on its own thread) while the next is consumed and decoded: the engine
        # parses while Python validates. At most two batches are in memory.
        self.inserter = ThreadPoolExecutor(1, thread_name_prefix="loader-insert")
        self.pending: tuple[Batch, Future] | None = None
        self.hurry = threading.Event()  # a revoke or stop is waiting: give up after a few attempts
        self.failing = threading.Event()  # the last insert attempt failed
        self._in_callback = False
        self._assigned: set[tuple[str, int]] = set()
        self._last_lag = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self) -> None:
        migrate(self.client, self.database)
        self.consumer.subscribe([self.settings.scans_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("loader.started", topic=self.settings.scans_topic, database=self.database)
        try:
            while not self.stop_event.is_set():
                self._take(self.consumer.consume(num_messages=min(self.settings.loader_batch_rows, 10_000), timeout=0.2))
                self._settle(block=False)
                if self.batch.ready(self.settings.loader_batch_rows, self.settings.loader_batch_seconds):
                    self._ship()
                self._report_lag()
            self.flush()  # SIGTERM: what is consumed gets stored and committed
        finally:
            self.consumer.close()
            self.inserter.shutdown(wait=True)
            self.dlq.flush(10)
            self.client.close()
            log.info("loader.stopped")

    def stop(self, *_args) -> None:
        self.stop_event.set()
        self.hurry.set()

    # -- steps -----------------------------------------------------------------------------------

    def _take(self, messages: list) -> None:
        batch, taken = self.batch, 0
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("loader.consume_error", error=msg.error().str())
                continue
            batch.add(msg, decode_message(msg))
            taken += 1
        self.metrics.consumed.inc(taken)

    def flush(self) -> bool:
        """Store and commit everything consumed so far (the batch in flight, then the current one)."""
        if not self._settle(block=True):
            return False
        self._ship()
        return self._settle(block=True)

    def _ship(self) -> None:
        """Hand the current batch to the insert thread, after the one before it is settled (its
        offsets must be committed first). Blocking here is the backpressure on consumption."""
        if self.batch.messages == 0 or not self._settle(block=True):
            return
        batch, self.batch = self.batch, Batch()
        self.pending = (batch, self.inserter.submit(self._store, batch))

    def _settle(self, block: bool) -> bool:
        """Finish the batch in flight: once ClickHouse has it, dead-letter its poison and commit.
        False only when it could not be stored (a revoke or a stop gave up on it): nothing of it
        is committed, and neither is anything consumed after it."""
        while self.pending is not None:
            batch, future = self.pending
            if not future.done():
                if not block:
                    return True
                self._wait(future)
                continue  # a rebalance callback may have settled it meanwhile
            self.pending = None
            if not future.result() or not self._commit(batch):
                # Nothing consumed after an unstored batch may be committed either: drop it all; the
                # partitions' next owner (or this loader after a restart) re-reads from the commit.
                self.batch = Batch()
                return False
            return True
        return True

    def _wait(self, future: Future) -> None:
        """Wait for the insert thread; once ClickHouse is failing, the consumer is paused and polled
        so it stays in the group and takes part in rebalances (not from inside a callback)."""
        while not future.done():
            if self._in_callback or not self.failing.is_set():
                wait([future], timeout=0.5)
                continue
            self.consumer.pause(self.consumer.assignment())
            try:
                while not future.done() and self.pending is not None and self.pending[1] is future:
                    msg = self.consumer.poll(0.2)  # paused: normally nothing; serves rebalance callbacks
                    if msg is not None:
                        self._take([msg])
            finally:
                self.consumer.resume(self.consumer.assignment())
            return

    def _commit(self, batch: Batch) -> bool:
        """Dead-letter the batch's poison (until the broker takes it), then commit its offsets.
        False only when a revoke or a stop is waiting and the DLQ still refuses: not committed,
        so the poison is re-read and dead-lettered again."""
        delay = 0.5
        while dead_letter(self.dlq, self.settings.dlq_topic, batch.poison) != 0:
            log.error("loader.dlq_not_acknowledged", count=len(batch.poison), retry_in_s=delay)
            if self.hurry.is_set():
                return False
            time.sleep(delay)
            delay = min(delay * 2, self.settings.loader_retry_max_s)
        for poison in batch.poison:
            self.metrics.dead_lettered.labels(poison.reason).inc()
        try:
            self.consumer.commit(offsets=batch.commit_offsets(), asynchronous=False)
        except KafkaException as exc:  # stored but not committed: re-read later, and it collapses
            log.warning("loader.commit_failed", error=str(exc)[:300])
        self.metrics.inserted.inc(len(batch.rows))
        self.metrics.duplicates.inc(batch.duplicates)
        self.metrics.batch_rows.observe(batch.messages)
        log.info("loader.batch", messages=batch.messages, rows=len(batch.rows), poison=len(batch.poison),
                 duplicates=batch.duplicates)
        return True

    def _store(self, batch: Batch) -> bool:
        """On the insert thread: insert with capped exponential backoff until ClickHouse takes it.
        Gives up (False) only after a few attempts once a revoke or a stop is waiting."""
        delay, tried = 0.2, 0
        while True:
            tried += 1
            t0 = time.perf_counter()
            try:
                store_batch(self.client, self.database, batch, "loader")
                self.metrics.batch_seconds.observe(time.perf_counter() - t0)
                self.failing.clear()
                return True
            except Exception as exc:  # ClickHouse down, slow or refusing: wait, never commit past it
                self.failing.set()
                self.metrics.insert_failures.inc()
                log.warning("loader.insert_failed", attempt=tried, retry_in_s=delay, error=str(exc)[:300])
                if self.hurry.is_set() and tried >= 3:
                    return False
                time.sleep(delay)
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
        """Store and commit what was consumed before giving partitions up; what cannot be stored
        in a few attempts is dropped from memory (the new owner re-reads it from the commit). The
        assignment strategy is librdkafka's eager default: a revoke takes every partition."""
        revoked = {(p.topic, p.partition) for p in partitions}
        self._in_callback = True
        self.hurry.set()
        try:
            self.flush()
        finally:
            self._in_callback = False
            if not self.stop_event.is_set():
                self.hurry.clear()
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
    tune_gc()
    signal.signal(signal.SIGTERM, loader.stop)
    signal.signal(signal.SIGINT, loader.stop)
    loader.run()
