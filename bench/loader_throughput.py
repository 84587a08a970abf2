"""Benchmark: the loader against raw consume and raw insert, in one run on this machine.

1. raw consume rate (confluent-kafka, no processing) of a backlog of N scans,
2. raw ClickHouse insert rate of the same rows through clickhouse-connect (50,000-row batches),
3. the loader's end-to-end rate over the same backlog (its own process, from the first consumed
   message to the last row visible in quacknet.scans), with its peak RSS and the CPU it and the
   ClickHouse gateway used,
4. 1, 2 and 3 loader processes in one consumer group (the way the loader scales: at most one per
   partition), each count timed over the same backlog; on a three-node cluster
   (QUACKNET_KAFKA_NODES=3) the backlog's topic is replicated as the declaration replicates the
   scans topic (three copies, two in sync).
(2) and (3) run in alternating rounds, each loader run compared with the insert rate measured
just before it; the median ratio is the figure. Target: (3) >= 70% of min(1, 2); RSS < 400 MB.
With --freshness, also offers scans through the running API at a fixed rate and reports p50/p99
of (row's loaded_at - the 202's arrival); target p99 <= 2 s at 1,000 scans/s. Needs the local
stack (`make run`; the API for --freshness).

    .venv/bin/python -m bench.loader_throughput [--scans 1000000] [--rounds 3] [--loaders 1,2,3] [--freshness 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

import psutil
from confluent_kafka.admin import NewTopic

from devtools import credentials
from devtools.samples import NATIVE_COLUMNS, native_row, scan_payload
from devtools.settings import DevSettings
from devtools.supervisor import free_port
from quacknet import kafka as qkafka
from quacknet import topics, warehouse
from quacknet.scan import Scan, decode, encode, validate_submission
from quacknet.warehouse.migrations import migrate

TOPIC = "bench.loader.scans"
PARTITIONS = 6  # the declaration's default: at most six loaders share it


def make_backlog(settings: DevSettings, n: int) -> list[bytes]:
    admin = qkafka.admin(settings)
    admin.delete_topics([TOPIC])
    time.sleep(2)
    factor, min_isr = topics.replication(len(topics.broker_ids(admin)))  # as the declaration replicates the scans topic
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, factor, config={"min.insync.replicas": str(min_isr)})])[TOPIC].result(timeout=30)
    rng, now = random.Random(3), dt.datetime.now(dt.UTC)
    template = [encode(Scan.received(validate_submission(scan_payload(f"p{i}", rng=rng, now=now), now), now))
                for i in range(1000)]
    producer = qkafka.producer(settings, **{"queue.buffering.max.messages": 1_000_000, "linger.ms": 50})
    values = []
    for i in range(n):  # unique scan_ids over a thousand realistic shapes
        doc = json.loads(template[i % 1000])
        doc["scan_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        value = json.dumps(doc, separators=(",", ":")).encode()
        values.append(value)
        while True:
            try:
                producer.produce(TOPIC, key=doc["device_id"].encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0
    return values


def raw_consume(settings: DevSettings, n: int) -> float:
    consumer = qkafka.consumer(settings, f"bench-raw-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([TOPIC])
    got, t0 = 0, None
    while got < n:
        batch = consumer.consume(10_000, timeout=1.0)
        if batch and t0 is None:
            t0 = time.perf_counter()
        got += sum(1 for m in batch if m.error() is None)
    rate = n / (time.perf_counter() - t0)
    consumer.close()
    return rate


def native_rows(values: list[bytes]) -> list[list]:
    return [native_row(decode(v), TOPIC, 0, i) for i, v in enumerate(values)]


def raw_insert(settings: DevSettings, rows: list[list], database: str) -> float:
    client = warehouse.client(settings)
    migrate(client, database)
    t0 = time.perf_counter()
    for i in range(0, len(rows), 50_000):
        client.insert(f"{database}.scans_store", rows[i:i + 50_000], column_names=NATIVE_COLUMNS)
    rate = len(rows) / (time.perf_counter() - t0)
    client.command(f"TRUNCATE TABLE {database}.scans_store")
    client.close()
    return rate


def gateway_process(settings: DevSettings) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        if "devtools.chgateway.app" in " ".join(proc.info["cmdline"] or []):
            return proc
    return None


def cpu_seconds(proc: psutil.Process | None) -> float:
    if proc is None:
        return float("nan")
    times = [proc.cpu_times(), *(c.cpu_times() for c in proc.children(recursive=True))]
    return sum(t.user + t.system for t in times)


def loader_run(settings: DevSettings, n: int, database: str, processes: int = 1) -> tuple[float, float, float, float]:
    """`processes` loaders in one consumer group (they share the partitions), each in its own process,
    timed from the first consumed message to the last row visible in quacknet.scans."""
    group = f"bench-loader-{uuid.uuid4().hex[:6]}"
    client = warehouse.client(settings)
    migrate(client, database)
    procs, ports = [], []
    for _ in range(processes):
        ports.append(free_port())
        env = {**os.environ, **settings.model_copy(update={
            "scans_topic": TOPIC, "clickhouse_database": database, "loader_group": group,
            "loader_metrics_port": ports[-1]}).to_env()}
        procs.append(subprocess.Popen([sys.executable, "-m", "quacknet.loader"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    ps, peak = [psutil.Process(p.pid) for p in procs], 0.0
    gateway = gateway_process(settings)
    try:
        while sum(consumed(port) for port in ports) == 0:
            time.sleep(0.02)
        t0, gateway_cpu, loader_cpu = time.perf_counter(), cpu_seconds(gateway), sum(map(cpu_seconds, ps))
        # progress from the store's row count (table metadata, no work for the engine): the backlog's
        # scan_ids are unique, so n stored rows is the whole backlog; the exact view is checked after
        while client.command(f"SELECT count() FROM {database}.scans_store") < n:
            peak = max(peak, *(p.memory_info().rss / 2**20 for p in ps))
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        loader_cpu, gateway_cpu = sum(map(cpu_seconds, ps)) - loader_cpu, cpu_seconds(gateway) - gateway_cpu
        exact = client.command(f"SELECT count() FROM {database}.scans")
        assert exact == n, f"quacknet.scans holds {exact:,} rows, expected {n:,}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
        client.close()
    return n / elapsed, peak, loader_cpu / elapsed, gateway_cpu / elapsed


def consumed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("quacknet_loader_consumed_total"))


def freshness(settings: DevSettings, rate: int, seconds: int) -> tuple[float, float, int]:
    """Offer `rate` scans/s through the API (batches of 10 every 10 ms); loaded_at - 202 time."""
    key = credentials.read(settings)["QUACKNET_API_KEY"]
    url = f"http://{settings.api_host}:{settings.api_port}/v1/scans"
    sent: dict[str, float] = {}
    per_tick, tick = rate // 100, 0.01
    start = time.time()
    for i in range(seconds * 100):
        batch = [scan_payload(f"fresh-{j % 100}") for j in range(per_tick)]
        req = urllib.request.Request(url, data=json.dumps(batch).encode(), method="POST",
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 202
        now = time.time()
        for scan in batch:
            sent[scan["scan_id"]] = now
        time.sleep(max(0.0, start + (i + 1) * tick - time.time()))
    client = warehouse.client(settings)
    ids = list(sent)
    deadline = time.time() + 60
    loaded: dict[str, float] = {}
    while len(loaded) < len(ids) and time.time() < deadline:
        for i in range(0, len(ids), 2000):
            chunk = [x for x in ids[i:i + 2000] if x not in loaded]
            if not chunk:
                continue
            rows = client.query(f"SELECT toString(scan_id), toUnixTimestamp64Milli(loaded_at) FROM {settings.clickhouse_database}.scans "
                                "WHERE scan_id IN {ids:Array(UUID)}", parameters={"ids": chunk}).result_rows
            loaded.update({sid: ms / 1000 for sid, ms in rows})
        time.sleep(0.5)
    lags = sorted(loaded[s] - sent[s] for s in loaded)
    return statistics.median(lags), lags[int(len(lags) * 0.99) - 1], len(ids) - len(loaded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="(raw insert, loader) pairs")
    parser.add_argument("--loaders", default="1,2,3", help="loader processes in one group to time, comma-separated ('': skip)")
    parser.add_argument("--freshness", type=int, default=0, help="scans/s to offer through the API (0: skip)")
    parser.add_argument("--freshness-seconds", type=int, default=30)
    args = parser.parse_args()
    settings = DevSettings()
    db_raw = f"bench_raw_{uuid.uuid4().hex[:6]}"
    values = make_backlog(settings, args.scans)
    consume = max(raw_consume(settings, args.scans) for _ in range(2))  # far above (2); best of two
    rows = native_rows(values)
    del values
    # Rounds of (raw insert, loader), each loader run against the insert rate measured just before
    # it: the machine is shared and noisy, and one slow baseline would flatter (or sink) a ratio.
    rounds, client = [], warehouse.client(settings)
    for _ in range(args.rounds):
        insert = raw_insert(settings, rows, db_raw)
        db_loader = f"bench_loader_{uuid.uuid4().hex[:6]}"
        rounds.append((insert, *loader_run(settings, args.scans, db_loader)))
        client.command(f"DROP DATABASE IF EXISTS {db_loader} SYNC")
    del rows
    scaled = {}
    for processes in [int(x) for x in args.loaders.split(",") if x]:
        db_scaled = f"bench_scaled_{uuid.uuid4().hex[:6]}"
        scaled[processes] = loader_run(settings, args.scans, db_scaled, processes)
        client.command(f"DROP DATABASE IF EXISTS {db_scaled} SYNC")
    brokers = len(topics.broker_ids(qkafka.admin(settings)))
    client.command(f"DROP DATABASE IF EXISTS {db_raw} SYNC")
    qkafka.admin(settings).delete_topics([TOPIC])
    ratios = [loader / min(consume, insert) for insert, loader, *_ in rounds]
    factor, min_isr = topics.replication(brokers)
    print(f"backlog                     {args.scans:,} scans on {TOPIC} ({PARTITIONS} partitions, {factor} replica(s), "
          f"min.insync.replicas {min_isr}; {brokers} broker(s))")
    print(f"(1) raw consume             {consume:>10,.0f} msgs/s  (best of 2)")
    for i, ((insert, loader, rss, loader_cores, gateway_cores), ratio) in enumerate(zip(rounds, ratios), 1):
        print(f"round {i}: (2) raw insert     {insert:>10,.0f} rows/s  (clickhouse-connect, 50,000-row batches)")
        print(f"round {i}: (3) loader         {loader:>10,.0f} scans/s  = {ratio:.0%} of min(1, 2); CPU loader "
              f"{loader_cores:.2f} cores, ClickHouse gateway {gateway_cores:.2f} cores (machine has {os.cpu_count()}); "
              f"peak RSS {rss:,.0f} MiB")
    print(f"(3) / min(1, 2)             median {statistics.median(ratios):.0%} over {len(ratios)} rounds "
          f"(min {min(ratios):.0%}, max {max(ratios):.0%}); target >= 70%")
    print(f"loader peak RSS             {max(r[2] for r in rounds):,.0f} MiB  (target < 400 MiB)")
    if scaled:
        base = min(consume, rounds[-1][0])
        one = scaled.get(1, (rounds[-1][1],))[0]
        for processes, (rate, rss, loader_cores, gateway_cores) in sorted(scaled.items()):
            print(f"(4) {processes} loader(s) in one group {rate:>10,.0f} scans/s  = {rate / one:.2f}x one loader, "
                  f"{rate / base:.0%} of min(1, last 2); CPU loaders {loader_cores:.2f} cores, gateway {gateway_cores:.2f} "
                  f"cores; peak RSS per loader {rss:,.0f} MiB")
    if args.freshness:
        p50, p99, missing = freshness(settings, args.freshness, args.freshness_seconds)
        print(f"freshness @ {args.freshness}/s via API  p50 {p50:.2f} s  p99 {p99:.2f} s  (target p99 <= 2 s), "
              f"not visible after 60 s: {missing}")


if __name__ == "__main__":
    main()
