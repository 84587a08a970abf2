"""The long-running loader: Kafka -> ClickHouse, each offset committed only after its scan is stored.

The loop, top to bottom:

1. consume up to a batch of messages (librdkafka runs rebalance callbacks only here);
2. decode each into the current batch (``quacknet.pipeline``);
3. settle the batch in flight once its insert finished: dead-letter its poison, commit its offsets;
4. ship the current batch to the insert thread when it is full or old enough and nothing is in
   flight; a full batch waiting for the one in flight stops consumption (backpressure).

While ClickHouse fails, the waiting loop pauses the consumer and keeps polling it, so the loader
stays in its group and serves rebalances. Only the loop polls: settling, flushing and the
rebalance callbacks never do, so none of them can run inside another. On a revoke or SIGTERM the
batches are flushed synchronously; the insert thread then gives up after a few attempts, and
nothing past the last stored batch is committed (the partitions' next owner re-reads it).
``kill -9``: the uncommitted tail is re-delivered on restart and collapses onto the stored rows.

Only ``Unavailable`` is retried. A refusal (a missing column, a wrong type, bad credentials)
stops the loader with ClickHouse's message: retrying would only hide it.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from quacknet import kafka
from quacknet.errors import QuackNetError, Unavailable
from quacknet.logs import configure_logging, get_logger
from quacknet.pipeline import Batch, Sink, decode_message
from quacknet.retry import Backoff
from quacknet.runtime import tune_gc
from quacknet.settings import Settings
from quacknet.warehouse.migrations import require_current

log = get_logger("quacknet.loader")

CONSUME_MAX = 10_000  # messages per consume call
GIVE_UP_AFTER = 3  # insert attempts once a revoke or a stop is waiting
LAG_EVERY_S = 5.0
POLL_AFTER_S = 10.0  # an insert slower than this is waited for with the consumer paused and polled

# Prefetch is bounded so a backlog cannot inflate RSS (librdkafka's default is 64 MiB per
# partition); once the bound is reached librdkafka backs off fetch.queue.backoff.ms (1 s by
# default, which starved the loader). A loader killed with -9 keeps its partitions until its
# session times out (45 s by default); 10 s bounds that stall. Heartbeats run on librdkafka's
# own thread, so long inserts do not end the session.
# Eager assignment is pinned: dropping the current batch after a give-up is only safe because a
# revoke takes every partition (cooperative or KIP-848 assignment would keep some, and a later
# commit on those would pass over the dropped messages).
CONSUMER_TUNING = {"queued.max.messages.kbytes": 8192, "fetch.queue.backoff.ms": 20, "session.timeout.ms": 10_000,
                   "heartbeat.interval.ms": 2_000, "group.protocol": "classic", "partition.assignment.strategy": "range"}


class LoaderMetrics:
    def __init__(self, registry: CollectorRegistry):
        kw = {"registry": registry}
        self.consumed = Counter("quacknet_loader_consumed", "Messages consumed", **kw)
        self.inserted = Counter("quacknet_loader_inserted", "Rows inserted into ClickHouse", **kw)
        self.duplicates = Counter("quacknet_loader_duplicates_dropped", "Copies of a scan_id dropped within a batch", **kw)
        self.conflicting = Counter("quacknet_loader_conflicting_copies",
                                   "Superseded copies of a scan_id whose contents differed (a phone sent conflicting "
                                   "copies), within a batch or of a scan this loader stored lately", **kw)
        self.dead_lettered = Counter("quacknet_loader_dead_lettered", "Poison messages sent to the DLQ", ["reason"], **kw)
        self.insert_failures = Counter("quacknet_loader_insert_failures", "Failed insert attempts (retried)", **kw)
        self.batch_rows = Histogram("quacknet_loader_batch_rows", "Messages per batch",
                                    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000), **kw)
        self.batch_seconds = Histogram("quacknet_loader_insert_seconds", "Insert latency per batch", **kw)
        self.lag = Gauge("quacknet_loader_lag", "Messages behind the end of each partition", ["topic", "partition"], **kw)


@dataclass
class InFlight:
    """The batch on the insert thread. Its future yields True (stored) or False (given up after a
    revoke or stop), or raises the non-retriable error that stopped it."""

    batch: Batch
    future: Future
    started: float = field(default_factory=time.monotonic)


class Loader:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None, group: str | None = None, *,
                 consumer=None, sink: Sink | None = None):
        self.settings = settings
        self.metrics = LoaderMetrics(registry or CollectorRegistry())
        self.consumer = consumer or kafka.consumer(settings, group or settings.loader_group, **CONSUMER_TUNING)
        self.sink = sink or Sink(settings, source="loader")
        self.inserter = ThreadPoolExecutor(1, thread_name_prefix="loader-insert")
        self.batch = Batch()
        self.inflight: InFlight | None = None
        self.stopping = threading.Event()  # SIGTERM: store and commit what is consumed, then exit
        self.give_up = threading.Event()  # a revoke or a stop waits: the insert thread stops retrying soon
        self.failing = threading.Event()  # the last insert attempt failed
        self.paused = False
        self.fatal: BaseException | None = None
        self._assigned: set[tuple[str, int]] = set()
        self._last_lag = 0.0

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        topic = self.settings.scans_topic
        try:
            require_current(self.sink.client, self.sink.database)
            self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            log.info("loader.started", topic=topic, database=self.sink.database)
            while not self.stopping.is_set():
                self._step()
            self._flush()
        except BaseException as exc:
            self.fatal = exc  # closing the consumer revokes; that revoke must not store again
            self.give_up.set()  # and the insert thread must not retry forever while we wait for it
            raise
        finally:
            self.consumer.close()
            self.inserter.shutdown(wait=True)
            self.sink.close()
            log.info("loader.stopped")

    def stop(self, *_args) -> None:
        self.stopping.set()
        self.give_up.set()

    def _step(self) -> None:
        max_rows, max_s = self.settings.loader_batch_rows, self.settings.loader_batch_seconds
        if self.inflight is not None and self.batch.ready(max_rows, max_s):
            self._await_inflight()
        else:
            self._take(self.consumer.consume(num_messages=min(max_rows, CONSUME_MAX), timeout=0.2))
        self._settle(block=False)
        if self.inflight is None and self.batch.ready(max_rows, max_s):
            self._ship()
        self._report_lag()

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

    def _await_inflight(self) -> None:
        """Backpressure: the next batch is full and waits for the one in flight. A healthy insert
        is waited for directly; a failing or slow one with the consumer paused and polled."""
        inflight = self.inflight
        if self.failing.is_set() or time.monotonic() - inflight.started > POLL_AFTER_S:
            self.consumer.pause(self.consumer.assignment())  # again: a rebalance may have assigned more
            self.paused = True
            self._take(self.consumer.consume(num_messages=CONSUME_MAX, timeout=0.2))  # normally nothing
        else:
            wait([inflight.future], timeout=0.5)

    def _ship(self) -> None:
        batch, self.batch = self.batch, Batch()
        self.inflight = InFlight(batch, self.inserter.submit(self._store, batch))

    def _settle(self, block: bool) -> bool:
        """Finish the batch in flight once its insert is done: dead-letter its poison, commit its
        offsets. False when it was not stored: then nothing consumed after it is committed either,
        so the current batch is dropped (re-read from the commit by whoever owns the partitions)."""
        inflight = self.inflight
        if inflight is None or (not block and not inflight.future.done()):
            return True
        wait([inflight.future])  # never polls: no callback can run in here
        self.inflight = None
        if self.paused:
            self.consumer.resume(self.consumer.assignment())
            self.paused = False
        if inflight.future.result() and self._commit(inflight.batch):
            return True
        self.batch = Batch()
        return False

    def _flush(self) -> None:
        """Store and commit everything consumed so far: the batch in flight, then the current one."""
        if self._settle(block=True) and self.batch.messages:
            self._ship()
            self._settle(block=True)

    # -- the insert thread -----------------------------------------------------------------------

    def _store(self, batch: Batch) -> bool:
        """Insert until ClickHouse takes it; ``Unavailable`` is retried with capped backoff, anything
        else propagates. Gives up (False) after a few attempts once a revoke or a stop waits."""
        backoff = Backoff(0.2, self.settings.loader_retry_max_s, interrupt=self.give_up)
        while True:
            started = time.perf_counter()
            try:
                self.sink.store(batch)
            except Unavailable as exc:
                self.failing.set()
                self.metrics.insert_failures.inc()
                log.warning("loader.insert_failed", attempt=backoff.attempts + 1, retry_in_s=backoff.delay,
                            error=str(exc)[:300])
                if self.give_up.is_set() and backoff.attempts + 1 >= GIVE_UP_AFTER:
                    return False
                backoff.sleep()
                self.sink.reconnect()
                continue
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
            self.failing.clear()
            return True

    # -- committing ------------------------------------------------------------------------------

    def _commit(self, batch: Batch) -> bool:
        """Dead-letter the batch's poison (until the broker takes it), then commit its offsets.
        False only when a revoke or a stop waits and the DLQ still refuses: not committed, so the
        poison is re-read and dead-lettered again."""
        backoff = Backoff(0.5, self.settings.loader_retry_max_s)
        while self.sink.dead_letter(batch.poison) != 0:
            log.error("loader.dlq_not_acknowledged", count=len(batch.poison), retry_in_s=backoff.delay)
            if self.give_up.is_set():
                return False
            backoff.sleep()
        for poison in batch.poison:
            self.metrics.dead_lettered.labels(poison.reason).inc()
        try:
            self.consumer.commit(offsets=batch.commit_offsets(), asynchronous=False)
        except KafkaException as exc:  # stored but not committed: re-read later, and it collapses
            log.warning("loader.commit_failed", error=str(exc)[:300])
        self.metrics.inserted.inc(len(batch.rows))
        self.metrics.duplicates.inc(batch.duplicates)
        self.metrics.conflicting.inc(batch.conflicting)
        self.metrics.batch_rows.observe(batch.messages)
        log.info("loader.batch", messages=batch.messages, rows=len(batch.rows), poison=len(batch.poison),
                 duplicates=batch.duplicates, conflicting=batch.conflicting)
        return True

    # -- rebalances and lag ----------------------------------------------------------------------

    def _on_assign(self, consumer, partitions) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("loader.assigned", partitions=sorted(p.partition for p in partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        """Store and commit what was consumed before giving partitions up (librdkafka's eager
        assignment: a revoke takes every partition)."""
        revoked = {(p.topic, p.partition) for p in partitions}
        if self.fatal is None:
            self.give_up.set()
            try:
                self._flush()
            finally:
                if not self.stopping.is_set():
                    self.give_up.clear()
        self._assigned -= revoked
        log.info("loader.revoked", partitions=sorted(p for _, p in revoked))

    def _report_lag(self) -> None:
        if time.monotonic() - self._last_lag < LAG_EVERY_S:
            return
        self._last_lag = time.monotonic()
        for topic, partition in list(self._assigned):
            tp = TopicPartition(topic, partition)
            try:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                position = self.consumer.position([tp])[0].offset
            except KafkaException:
                continue
            if high >= 0 and position >= 0:
                self.metrics.lag.labels(topic, str(partition)).set(max(0, high - position))


def main() -> int:
    settings = Settings()
    configure_logging(settings)
    registry = CollectorRegistry()
    start_http_server(settings.loader_metrics_port, addr=settings.loader_metrics_host, registry=registry)
    loader = Loader(settings, registry)
    tune_gc()
    signal.signal(signal.SIGTERM, loader.stop)
    signal.signal(signal.SIGINT, loader.stop)
    try:
        loader.run()
    except QuackNetError as exc:
        log.error("loader.failed", kind=type(exc).__name__, error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
