"""Benchmark: the ingest API against raw confluent-kafka, in one run on this machine.

(a) raw confluent-kafka produce rate of the same serialized scans (the baseline),
(b) the API's batch ingest rate: batches of 500 over concurrent keep-alive connections,
(c) single-scan requests: rate and p50/p99 latency.
(b') the ceiling: bench/passthrough_app.py under the same gunicorn settings and load as (b), which
     forwards each item as sent (no validation, no encoding, no delivery reports).
Targets: (b) >= 50% of (a); (c) >= 2,000 requests/s with p99 < 50 ms at 2 gunicorn workers.

Both API loads come from wrk, a C load generator in its own process, so the clients take little
of the CPU the API is measured on (Python clients took about a third of this 2-core machine).
The baseline producer is connected and holds its idempotence PID before it is timed, as the API's
long-lived producers do (timing its start-up had halved the baseline). (a), (b) and (b') run in
alternating rounds, each compared with the (a) just before it; the figures are median ratios, since
the broker's speed here swings between runs (530-770k/s for (a) in one session).
After each (b) round the topic's offsets must have grown by every scan the API accepted.
Also reports CPU use during (b) and the RSS of each gunicorn worker. Needs the local stack's
Kafka (`make run`).

    .venv/bin/python -m bench.api_ingest [--scans 400000] [--rounds 3] [--seconds 10] [--batch-connections 4] [--connections 16]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from devtools import kafka as devkafka
from devtools.samples import scan_payload
from devtools.services import API, KAFKA
from devtools.settings import PROJECT_ROOT, DevSettings
from devtools.supervisor import Supervisor, free_port, port_open
from quacknet import kafka as qkafka
from quacknet.apikeys import SCOPE_WRITE_SCANS, add_key
from quacknet.scan import Scan, encode, validate_submission

TOPIC = "bench.api.scans"
BATCH = 500

# wrk's per-thread Lua: count each response status (reported by `done`, summed over the threads).
STATUS_LUA = r'''
local threads = {}
statuses = {}
setup = function(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
  local e, all = summary.errors, {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do all[status] = (all[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(all) do parts[#parts + 1] = status .. "=" .. n end
  io.write(string.format("QN %d %d %d %f %f %s\n", summary.requests, e.connect + e.read + e.write + e.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99), table.concat(parts, ",")))
end
'''

# Each wrk thread loads its share of the request bodies once and cycles through them.
BATCH_LUA = STATUS_LUA + r'''
local bodies, i = {}, 0
init = function(args)
  local dir, n, step = args[1], tonumber(args[2]), tonumber(args[3])
  for k = index, n - 1, step do
    local f = assert(io.open(dir .. "/" .. k .. ".json", "rb"))
    bodies[#bodies + 1] = wrk.format("POST", nil, nil, f:read("*a"))
    f:close()
  end
end
request = function()
  i = i % #bodies + 1
  return bodies[i]
end
'''


def raw_produce(settings: DevSettings, values: list[tuple[bytes, bytes]]) -> float:
    """The baseline at its best: a producer already connected and holding its idempotence PID
    (the API's producers are long-lived too), timed from the first message to the last ack."""
    producer = qkafka.producer(settings, **{"queue.buffering.max.messages": 1_000_000})
    producer.produce(TOPIC, key=values[0][0], value=values[0][1])
    assert producer.flush(30) == 0
    t0 = time.perf_counter()
    for key, value in values:
        while True:
            try:
                producer.produce(TOPIC, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(60) == 0
    return len(values) / (time.perf_counter() - t0)


def wrk(port: int, key: str, seconds: int, connections: int, script: Path, *args: str) -> dict:
    """One wrk run against POST /v1/scans. 202s are the rate; 503s (producer queue full: the API
    shedding load while the broker catches up) are counted; any other status or a socket error
    fails the benchmark."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
           "-H", f"X-API-Key: {key}", "-H", "Content-Type: application/json",
           f"http://127.0.0.1:{port}/v1/scans"]
    out = subprocess.run([*cmd, "--", *args] if args else cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"QN (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d=,]*)", out)
    assert found, out
    requests, socket_errors, duration_us, p50_us, p99_us, statuses = found.groups()
    statuses = {int(s): int(n) for s, n in (part.split("=") for part in statuses.split(",") if part)}
    assert int(socket_errors) == 0 and set(statuses) <= {202, 503}, out
    assert sum(statuses.values()) == int(requests), out
    return {"accepted": statuses.get(202, 0), "shed": statuses.get(503, 0), "seconds": int(duration_us) / 1e6,
            "p50_ms": float(p50_us) / 1000, "p99_ms": float(p99_us) / 1000}


def single_scan_script(directory: Path) -> Path:
    body = json.dumps(scan_payload("wrk-phone"))
    script = directory / "single.lua"
    assert "]==]" not in body
    script.write_text(STATUS_LUA + f'wrk.method = "POST"\nwrk.body = [==[{body}]==]\n')  # a Lua long string: no escapes
    return script


def topic_size(settings: DevSettings) -> int:
    consumer = qkafka.consumer(settings, "bench-api-offsets")
    try:
        partitions = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def wait_for_topic(settings: DevSettings, expected: int, timeout_s: float = 60) -> int:
    """Every scan the API accepted must reach the topic (the API answers before the broker acks)."""
    deadline = time.monotonic() + timeout_s
    while (size := topic_size(settings)) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert size >= expected, f"only {size:,} of {expected:,} accepted scans reached {TOPIC}"
    return size


def start_passthrough(settings: DevSettings) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(settings.api_workers), "--worker-class", "api.workers.ApiWorker",
         "--threads", str(settings.api_threads), "--bind", f"127.0.0.1:{port}", "--keep-alive", "30",
         "--log-level", "warning", "--chdir", str(PROJECT_ROOT), "bench.passthrough_app:create_app()"],
        env={**os.environ, **settings.to_env()})
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port):
        assert proc.poll() is None and time.monotonic() < deadline, "the pass-through app did not start"
        time.sleep(0.2)
    return proc, port


def cpu_seconds(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    base = DevSettings()
    admin = qkafka.admin(base)
    admin.delete_topics([TOPIC])
    time.sleep(1)
    admin.create_topics([NewTopic(TOPIC, 6, 1)])[TOPIC].result(timeout=30)
    rng = random.Random(1)
    now = dt.datetime.now(dt.UTC)
    payloads = [scan_payload(f"phone-{i % 5000}", rng=rng) for i in range(args.scans)]
    values = [(p["device_id"].encode(), encode(Scan.received(validate_submission(p, now), now))) for p in payloads]

    with tempfile.TemporaryDirectory(prefix="qn-bench-api-") as tmp:
        tmp = Path(tmp)
        bodies = tmp / "bodies"
        bodies.mkdir()
        for k, i in enumerate(range(0, len(payloads), BATCH)):
            (bodies / f"{k}.json").write_bytes(json.dumps(payloads[i:i + BATCH]).encode())
        n_bodies = k + 1
        batch_script = tmp / "batches.lua"
        batch_script.write_text(BATCH_LUA)
        settings = base.model_copy(update={"home": tmp, "lib": base.lib_dir, "api_port": free_port(),
                                           "scans_topic": TOPIC, "api_workers": 2})
        key = add_key(settings.api_keys_path, "bench", {SCOPE_WRITE_SCANS}, 10_000_000)
        single_script = single_scan_script(tmp)
        sup = Supervisor(settings)
        grants = contextlib.ExitStack()  # the API runs as its own principal: WRITE on the bench topic
        grants.enter_context(devkafka.granted(settings, ("api",)))
        sup.start(API)
        passthrough, passthrough_port = start_passthrough(settings)
        try:
            workers = psutil.Process(sup.process(API).pid).children()
            broker = Supervisor(base).process(KAFKA)
            raw_produce(base, values)  # warm-up, not counted: the broker's first run here is up to 2x slower
            load = (args.batch_connections, batch_script, str(bodies), str(n_bodies), "2")
            wrk(settings.api_port, key, 2, *load)
            wrk(passthrough_port, key, 2, *load)
            rounds = []
            for _ in range(args.rounds):
                raw = raw_produce(base, values)
                before = topic_size(base)
                cpu0, broker0, machine0 = [cpu_seconds([w]) for w in workers], cpu_seconds([broker]), psutil.cpu_times()
                run = wrk(settings.api_port, key, args.seconds, *load)
                machine, cpu1, broker1 = psutil.cpu_times(), [cpu_seconds([w]) for w in workers], cpu_seconds([broker])
                scans = run["accepted"] * BATCH
                before = wait_for_topic(base, before + scans)
                ceiling = wrk(passthrough_port, key, args.seconds, *load)
                wait_for_topic(base, before + ceiling["accepted"] * BATCH)
                rounds.append({
                    "raw": raw, "batch": scans / run["seconds"], "p50": run["p50_ms"], "p99": run["p99_ms"],
                    "workers": [c1 - c0 for c0, c1 in zip(cpu0, cpu1)], "broker": broker1 - broker0,
                    "seconds": run["seconds"], "scans": scans, "shed": run["shed"],
                    "ceiling": ceiling["accepted"] * BATCH / ceiling["seconds"],
                    "idle": (machine.idle - machine0.idle) / run["seconds"],
                })
            single = wrk(settings.api_port, key, args.seconds, args.connections, single_script)
            rss = [w.memory_info().rss / 2**20 for w in workers]
        finally:
            sup.stop(API)
            grants.close()
            passthrough.terminate()
            passthrough.wait(30)
    admin.delete_topics([TOPIC])

    ratios = [r["batch"] / r["raw"] for r in rounds]
    ceilings = [r["ceiling"] / r["raw"] for r in rounds]
    print(f"scans                         {args.scans:,} (JSON {sum(len(v) for _, v in values) / len(values):.0f} B each on Kafka)")
    for i, r in enumerate(rounds, 1):
        worker_cpu = sum(r["workers"])
        print(f"round {i}: (a) raw confluent-kafka {r['raw']:>9,.0f} scans/s   (b) API batches of {BATCH} "
              f"{r['batch']:>9,.0f} scans/s = {r['batch'] / r['raw']:.0%}   batch p50 {r['p50']:.0f} ms p99 {r['p99']:.0f} ms")
        print(f"         CPU during (b): API workers {' + '.join(f'{c:.1f}' for c in r['workers'])} s "
              f"({worker_cpu / r['scans'] * 1e6:.1f} µs/scan), Kafka broker {r['broker']:.1f} s, machine idle "
              f"{r['idle']:.2f} of {psutil.cpu_count()} cores over {r['seconds']:.1f} s; all {r['scans']:,} accepted on the topic"
              + (f"; {r['shed']} batches answered 503 (queue full)" if r["shed"] else ""))
        print(f"         (b') pass-through ceiling {r['ceiling']:>9,.0f} scans/s = {r['ceiling'] / r['raw']:.0%} of (a)")
    print(f"(b) / (a)                     median {statistics.median(ratios):.0%} over {len(ratios)} rounds "
          f"(min {min(ratios):.0%}, max {max(ratios):.0%}); target >= 50%; {args.batch_connections} wrk connections")
    print(f"(b') / (a)                    median {statistics.median(ceilings):.0%} (min {min(ceilings):.0%}, max "
          f"{max(ceilings):.0%}): no validation, no encoding; (b) / (b') median "
          f"{statistics.median(r['batch'] / r['ceiling'] for r in rounds):.0%}")
    rps = single["accepted"] / single["seconds"]
    print(f"(c) API single scans (wrk)    {rps:>9,.0f} requests/s  p50 {single['p50_ms']:.1f} ms  p99 {single['p99_ms']:.1f} ms  "
          f"(target >= 2,000/s, p99 < 50 ms), {args.connections} connections, {args.seconds}s"
          + (f"; {single['shed']} answered 503" if single["shed"] else ""))
    print(f"gunicorn workers              {len(rss)} x gthread({settings.api_threads}); RSS " + ", ".join(f"{r:.0f} MiB" for r in rss))


if __name__ == "__main__":
    main()
