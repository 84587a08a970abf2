"""Helpers shared by the integration tests of the loader, replays and offset resets."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
import threading
import time

from confluent_kafka import TopicPartition

from quacknet import kafka as qkafka
from quacknet.loader.run import Loader
from quacknet.samples import scan_payload
from quacknet.scan import Scan, encode, validate_submission


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def produce(settings, n: int, rng: random.Random | None = None, devices: int = 50) -> list[str]:
    rng = rng or random.Random()
    now = dt.datetime.now(dt.timezone.utc)
    producer = qkafka.producer(settings)
    ids = []
    for i in range(n):
        scan = Scan.received(validate_submission(scan_payload(f"phone-{i % devices}", rng=rng, now=now), now), now)
        producer.produce(settings.scans_topic, key=scan.device_id.encode(), value=encode(scan))
        ids.append(str(scan.scan_id))
        if i % 5000 == 4999:
            producer.poll(0)
    assert producer.flush(30) == 0
    return ids


def count(ch, settings) -> int:
    return ch.command(f"SELECT count() FROM {settings.clickhouse_database}.scans")


def stored_ids(ch, settings) -> list[str]:
    return [str(r[0]) for r in ch.query(f"SELECT scan_id FROM {settings.clickhouse_database}.scans").result_rows]


def committed(settings, group: str) -> dict[int, int]:
    consumer = qkafka.consumer(settings, group)
    try:
        parts = [TopicPartition(settings.scans_topic, p) for p in range(6)]
        # a partition with nothing committed reports OFFSET_INVALID (-1001): nothing consumed, i.e. 0
        return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def end_offsets(settings) -> dict[int, int]:
    consumer = qkafka.consumer(settings, "watermarks")
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(settings.scans_topic, p), timeout=10)[1] for p in range(6)}
    finally:
        consumer.close()


class LoaderThread:
    def __init__(self, settings, group: str | None = None):
        self.loader = Loader(settings, group=group)
        self.thread = threading.Thread(target=self.loader.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.loader.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def loader_process(settings) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quacknet.loader"], env={**os.environ, **settings.to_env()},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
