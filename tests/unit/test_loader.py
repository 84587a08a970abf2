"""The loader's control flow against stand-ins for the consumer and the sink: what it commits,
when it gives up, and that it never hangs, whatever the order of outages, revokes and stops.
(The same guarantees on the real broker and engine: tests/integration/test_loader.py.)"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from confluent_kafka import KafkaException

from devtools.samples import scan_payload
from quacknet import warehouse
from quacknet.errors import Unavailable
from quacknet.loader import Loader
from quacknet.scan import Scan, encode, validate_submission
from quacknet.settings import Settings
from tests.support.messages import Message

NOW = dt.datetime.now(dt.UTC)


def scans(n: int, partition: int = 0, first: int = 0) -> list[Message]:
    return [Message(encode(Scan.received(validate_submission(scan_payload(f"d{i}", now=NOW), NOW), NOW)), partition, first + i)
            for i in range(n)]


class Consumer:
    """Hands out scripted messages; records commits, pauses and revokes."""

    def __init__(self, messages: list[Message], fail_consume_after: int | None = None):
        self.pending = list(messages)
        self.commits: list[dict[int, int]] = []
        self.paused = False
        self.calls = 0
        self.fail_consume_after = fail_consume_after
        self.revoke_next = threading.Event()
        self.on_revoke = None

    def subscribe(self, topics, on_assign=None, on_revoke=None):
        self.on_revoke = on_revoke

    def consume(self, num_messages, timeout):
        self.calls += 1
        if self.fail_consume_after is not None and self.calls > self.fail_consume_after:
            raise KafkaException("the broker connection broke for good")
        if self.revoke_next.is_set():
            self.revoke_next.clear()
            self.on_revoke(self, [])
        if self.paused or not self.pending:
            time.sleep(min(timeout, 0.02))
            return []
        taken, self.pending = self.pending[:num_messages], self.pending[num_messages:]
        return taken

    def pause(self, partitions):
        self.paused = True

    def resume(self, partitions):
        self.paused = False

    def assignment(self):
        return []

    def commit(self, offsets, asynchronous):
        self.commits.append({tp.partition: tp.offset for tp in offsets})

    def close(self):
        self.on_revoke(self, [])


class Sink:
    """Stores, or fails the way it is told to."""

    def __init__(self, failure: Exception | None = None):
        self.failure = failure
        self.stored: list[int] = []
        self.attempts = 0
        self.database = "db"
        self.client = None

    def store(self, batch):
        self.attempts += 1
        if self.failure is not None:
            raise self.failure
        self.stored.append(batch.messages)

    def dead_letter(self, poison, timeout_s=30):
        return 0

    def reconnect(self):
        pass

    def close(self):
        pass


@pytest.fixture(autouse=True)
def schema_is_current(monkeypatch):
    monkeypatch.setattr("quacknet.loader.require_current", lambda client, database: None)


def loader(consumer, sink, **settings) -> Loader:
    base = {"loader_batch_rows": 100, "loader_batch_seconds": 0.05, "loader_retry_max_s": 0.05, **settings}
    return Loader(Settings(**base), consumer=consumer, sink=sink)


def run_in_thread(the_loader: Loader) -> tuple[threading.Thread, list]:
    errors: list = []

    def target():
        try:
            the_loader.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def wait(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_offsets_are_committed_only_behind_stored_batches():
    consumer, sink = Consumer(scans(250)), Sink()
    the_loader = loader(consumer, sink)
    thread, errors = run_in_thread(the_loader)
    assert wait(lambda: sum(sink.stored) == 250)
    the_loader.stop()
    thread.join(10)
    assert not thread.is_alive() and errors == []
    assert consumer.commits[-1] == {0: 250}
    assert sum(sink.stored) == 250


def test_an_outage_is_waited_out_with_the_consumer_paused_then_everything_is_stored():
    consumer, sink = Consumer(scans(300)), Sink(Unavailable("down"))
    the_loader = loader(consumer, sink)
    thread, _ = run_in_thread(the_loader)
    assert wait(lambda: sink.attempts >= 5 and consumer.paused)
    assert consumer.commits == []
    sink.failure = None
    assert wait(lambda: sum(sink.stored) == 300)
    the_loader.stop()
    thread.join(10)
    assert consumer.commits[-1] == {0: 300} and not consumer.paused


def test_a_revoke_during_an_outage_gives_up_soon_commits_nothing_and_keeps_nothing():
    consumer, sink = Consumer(scans(150)), Sink(Unavailable("down"))
    the_loader = loader(consumer, sink, loader_retry_max_s=5.0)
    thread, _ = run_in_thread(the_loader)
    assert wait(lambda: sink.attempts >= 2)
    consumer.revoke_next.set()
    assert wait(lambda: the_loader.inflight is None and the_loader.batch.messages == 0, timeout_s=5)
    assert consumer.commits == []
    the_loader.stop()
    thread.join(10)
    assert not thread.is_alive() and consumer.commits == []


def test_a_stop_during_an_outage_exits_promptly_without_committing():
    consumer, sink = Consumer(scans(150)), Sink(Unavailable("down"))
    the_loader = loader(consumer, sink, loader_retry_max_s=30.0)
    thread, errors = run_in_thread(the_loader)
    assert wait(lambda: sink.attempts >= 2)
    started = time.monotonic()
    the_loader.stop()
    thread.join(15)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert errors == [] and consumer.commits == []


def test_a_fatal_consumer_error_during_an_outage_stops_the_loader_instead_of_hanging():
    consumer, sink = Consumer(scans(150), fail_consume_after=20), Sink(Unavailable("down"))
    the_loader = loader(consumer, sink, loader_retry_max_s=30.0)
    thread, errors = run_in_thread(the_loader)
    thread.join(15)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], KafkaException)
    assert consumer.commits == []


def test_a_refusal_stops_the_loader_at_once_with_its_reason():
    refused = warehouse.Refused("ClickHouse refused storing 100 messages into db.scans_store (16): No such column rsrq")
    consumer, sink = Consumer(scans(150)), Sink(refused)
    the_loader = loader(consumer, sink)
    thread, errors = run_in_thread(the_loader)
    thread.join(10)
    assert not thread.is_alive() and errors == [refused]
    assert sink.attempts == 1 and consumer.commits == []
