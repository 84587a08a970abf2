"""Fire-and-forget delivery to Kafka that never drops silently.

A Kafka write tied to an HTTP request's lifetime vanishes, unlogged, when the
response goes out. Here the producer belongs to the process, not to a request:

- one long-lived confluent-kafka producer per process (acks=all, idempotent);
- ``submit`` only enqueues (microseconds); a poll thread serves delivery reports,
  counting and logging every outcome;
- a message the broker has not taken within the delivery timeout is written to
  the durable spool (one fsync per poll round), and a re-send thread puts spooled
  messages back on Kafka once the broker answers;
- ``close`` flushes, and spools whatever the broker still has not taken.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import CollectorRegistry, Counter, Gauge

from quacknet import kafka
from quacknet.errors import Saturated
from quacknet.logs import get_logger
from quacknet.settings import Settings
from quacknet.spool import Spool, SpoolFull

log = get_logger(__name__)

RESEND_BATCH = 5000  # spooled messages put back on Kafka per round


class QueueFull(Saturated):
    """The producer queue (or the spool behind it) is saturated: answer 503, never hang."""

    code = "queue_full"


@dataclass(frozen=True)
class Delivered:
    partition: int
    offset: int


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry | None):
        kw = {"registry": registry}
        self.produced = Counter("quacknet_delivery_produced", "Messages handed to the producer", **kw)
        self.delivered = Counter("quacknet_delivery_delivered", "Messages the broker acknowledged", **kw)
        self.failed = Counter("quacknet_delivery_failed", "Delivery reports with an error", ["reason"], **kw)
        self.spooled = Counter("quacknet_delivery_spooled", "Messages written to the durable spool", **kw)
        self.resent = Counter("quacknet_delivery_resent", "Spooled messages the broker acknowledged on re-send", **kw)
        self.queue_depth = Gauge("quacknet_delivery_queue_depth", "Messages waiting in the producer queue",
                                 multiprocess_mode="livesum", **kw)
        self.spool_depth = Gauge("quacknet_delivery_spool_depth", "Messages waiting in the spool",
                                 multiprocess_mode="livemax", **kw)


def producer(settings: Settings) -> Producer:
    """The API's producer: the project's defaults (acks=all, idempotent) with the API's delivery
    timeout, queue bound and linger. bench/passthrough_app.py uses the same, so its ceiling is fair."""
    return kafka.producer(settings, **{
        "message.timeout.ms": settings.api_delivery_timeout_ms,
        "queue.buffering.max.messages": settings.api_queue_max_messages,
        "linger.ms": settings.api_linger_ms,
    })


class Delivery:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None):
        self.settings = settings
        self.metrics = DeliveryMetrics(registry)
        self.queue_max = settings.api_queue_max_messages
        self.producer = producer(settings)
        self.spool = Spool(settings.spool_path, settings.spool_max_messages)
        self._failed: list[tuple[str, bytes | None, bytes, str]] = []
        self._failed_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._delivered = 0
        self._stop = threading.Event()
        self._closed = False
        self._broker_ok = (0.0, False)
        self._resend_interval_s = settings.api_spool_resend_interval_s
        self._threads = [
            threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True),
            threading.Thread(target=self._resend_loop, name="spool-resend", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- submitting ------------------------------------------------------------------------------

    def room(self, n: int) -> bool:
        return len(self.producer) + n <= self.queue_max * 0.9

    def submit(self, topic: str, messages: list[tuple[bytes | None, bytes]], waiters: list[Future] | None = None) -> None:
        """Enqueue messages (key, value) in one call into librdkafka. A full queue is the caller's
        503 (``room`` first); a message that still does not fit is spooled, never dropped."""
        batch = [{"key": key, "value": value} for key, value in messages]
        for entry, waiter in zip(batch, waiters or ()):
            entry["callback"] = lambda err, msg, w=waiter: self._report(err, msg, w)
        try:
            self.producer.produce_batch(topic, batch, on_delivery=self._report)
        except BufferError:
            pass  # the entries that did not fit carry '_error' below
        refused = [e for e in batch if "_error" in e]
        if refused:
            self._spool_now([(topic, e["key"], e["value"]) for e in refused], "queue_full")
            for entry, waiter in zip(batch, waiters or ()):
                if "_error" in entry:
                    waiter.set_exception(QueueFull("producer queue full; spooled"))
        self.metrics.produced.inc(len(batch) - len(refused))

    def _report(self, err: KafkaError | None, msg: Message, waiter: Future | None = None) -> None:
        """Every delivery report: counted; a failure is logged and its message spooled."""
        if err is None:
            with self._count_lock:  # far cheaper than a metric update per message; published by the poll loop
                self._delivered += 1
            if waiter is not None:
                waiter.set_result(Delivered(msg.partition(), msg.offset()))
            return
        self.metrics.failed.labels(err.name()).inc()
        log.warning("delivery.failed", topic=msg.topic(), reason=err.name(), error=err.str())
        with self._failed_lock:
            self._failed.append((msg.topic(), msg.key(), msg.value(), err.name()))
        if waiter is not None:
            waiter.set_exception(KafkaException(err))

    # -- background ------------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)
            self._drain_failed()
            self.sync_metrics()

    def sync_metrics(self) -> None:
        """Publish the counts gathered since the last call (the poll loop calls it every round;
        the metrics endpoint calls it so a scrape never lags this process's own reports)."""
        with self._count_lock:
            delivered, self._delivered = self._delivered, 0
        if delivered:
            self.metrics.delivered.inc(delivered)
        self.metrics.queue_depth.set(len(self.producer))

    def _drain_failed(self) -> None:
        with self._failed_lock:
            failed, self._failed = self._failed, []
        if failed:
            by_reason: dict[str, list] = {}
            for topic, key, value, reason in failed:
                by_reason.setdefault(reason, []).append((topic, key, value))
            for reason, messages in by_reason.items():
                self._spool_now(messages, reason)

    def _spool_now(self, messages, reason: str) -> None:
        try:
            self.spool.add(messages, reason)
        except SpoolFull:
            # Nowhere left to put them: loud, counted, and readiness already reports it.
            log.error("delivery.lost_spool_full", count=len(messages), reason=reason)
            self.metrics.failed.labels("spool_full").inc(len(messages))
            return
        self.metrics.spooled.inc(len(messages))
        log.warning("delivery.spooled", count=len(messages), reason=reason)

    def _resend_loop(self) -> None:
        while not self._stop.wait(self._resend_interval_s):
            try:
                depth = self.spool.depth()
                self.metrics.spool_depth.set(depth)
                if depth and self.broker_reachable(timeout=2):
                    self.resend(limit=RESEND_BATCH)
            except Exception:
                log.exception("delivery.resend_error")

    def resend(self, limit: int) -> int:
        """Put up to ``limit`` spooled messages back on Kafka; returns how many the broker took."""
        rows = self.spool.claim(limit)
        if not rows:
            return 0
        ok: list[int] = []
        failed: list[int] = []

        def report(err, msg, row_id):
            (failed if err else ok).append(row_id)

        for row in rows:
            while True:
                try:
                    self.producer.produce(row.topic, key=row.key, value=row.value,
                                          on_delivery=lambda err, msg, i=row.id: report(err, msg, i))
                    break
                except BufferError:
                    self.producer.poll(0.1)
        deadline = time.monotonic() + self.settings.api_delivery_timeout_ms / 1000 + 5
        self.producer.flush(self.settings.api_delivery_timeout_ms / 1000 + 5)
        while len(ok) + len(failed) < len(rows) and time.monotonic() < deadline:
            self.producer.poll(0.05)  # a report may be running on the poll thread right now
        self.spool.done(ok)
        self.spool.release(failed)
        self.metrics.resent.inc(len(ok))
        log.info("delivery.resent", delivered=len(ok), failed=len(failed), remaining=self.spool.depth())
        return len(ok)

    def broker_reachable(self, timeout: float = 1.0) -> bool:
        """A metadata round trip, cached for a second (readiness is polled often)."""
        checked_at, ok = self._broker_ok
        if time.monotonic() - checked_at < 1.0:
            return ok
        try:
            ok = bool(self.producer.list_topics(timeout=timeout).brokers)
        except KafkaException:
            ok = False
        self._broker_ok = (time.monotonic(), ok)
        return ok

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush; whatever the broker has not taken by the deadline goes to the spool."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for t in self._threads:
            t.join(timeout=timeout_s + 5)
        left = self.producer.flush(timeout_s)
        if left:
            self.producer.purge(in_queue=True, in_flight=True)
            self.producer.flush(2)  # serves the purged messages' reports, which spool them
        self._drain_failed()
        self.sync_metrics()
        log.info("delivery.closed", unflushed=left, spool_depth=self.spool.depth())
        self.spool.close()
