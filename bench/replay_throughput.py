"""Benchmark: a replay of 1,000,000 messages from Kafka into ClickHouse, and the same replay again.

Times ``quacknet.replay.copy`` (what the replay_to_clickhouse DAG's copy task runs) over a backlog
of N scans on a 6-partition topic into a fresh database, against the raw consume rate of the same
backlog measured in the same run; then replays the same range a second time (idempotence: nothing
inserted) and checks the exact count. Needs the local stack's Kafka and ClickHouse (`make run`).

    .venv/bin/python -m bench.replay_throughput [--scans 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid

from bench.loader_throughput import TOPIC, make_backlog, raw_consume
from devtools.settings import DevSettings
from quacknet import kafka as qkafka
from quacknet import replay, warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=1_000_000)
    args = parser.parse_args()
    settings = DevSettings()
    database = f"bench_replay_{uuid.uuid4().hex[:6]}"
    make_backlog(settings, args.scans)
    consume = raw_consume(settings, args.scans)
    ranges = replay.plan(settings, TOPIC, start_time=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    timings = []
    for _ in range(2):
        t0 = time.perf_counter()
        result = replay.copy(settings, TOPIC, ranges, database=database)
        timings.append((time.perf_counter() - t0, result))
    client = warehouse.client(settings)
    stored = client.command(f"SELECT count() FROM {database}.scans")
    client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    qkafka.admin(settings).delete_topics([TOPIC])
    (first_s, first), (second_s, second) = timings
    print(f"backlog                {args.scans:,} scans on {TOPIC} (6 partitions); planned {sum(r.messages for r in ranges):,}")
    print(f"raw consume            {consume:>10,.0f} msgs/s (baseline)")
    print(f"replay 1 (empty DB)    {first_s:6.1f} s = {args.scans / first_s:>8,.0f} msgs/s = {args.scans / first_s / consume:.0%} "
          f"of raw consume; read {first.read:,}, inserted {first.inserted:,}, already present {first.already_present:,}")
    print(f"replay 2 (same range)  {second_s:6.1f} s = {args.scans / second_s:>8,.0f} msgs/s; read {second.read:,}, "
          f"inserted {second.inserted:,}, already present {second.already_present:,}")
    print(f"quacknet.scans         {stored:,} rows (expected {args.scans:,})")
    assert stored == args.scans and second.inserted == 0


if __name__ == "__main__":
    main()
