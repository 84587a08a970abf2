"""Benchmark: the ingest API against raw confluent-kafka, in one run on this machine.

(a) raw confluent-kafka produce rate of the same serialized scans (the baseline),
(b) the API's batch ingest rate: batches of 500, several concurrent client processes,
(c) single-scan requests under wrk (a separate C load generator): rate and p50/p99 latency.
Targets: (b) >= 50% of (a); (c) >= 2,000 requests/s with p99 < 50 ms at 2 gunicorn workers.
Also reports the RSS of each gunicorn worker. Needs the local stack's Kafka (`make run`).

    .venv/bin/python bench/api_ingest.py [--scans 200000] [--clients 2] [--seconds 15] [--connections 16]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing as mp
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from confluent_kafka.admin import NewTopic

from quacknet import kafka as qkafka
from quacknet.apikeys import SCOPE_WRITE_SCANS, add_key
from quacknet.devstack.services import API, KAFKA
from quacknet.devstack.supervisor import Supervisor, free_port
from quacknet.scan import Scan, encode, validate_submission
from quacknet.settings import Settings
from quacknet.samples import scan_payload

TOPIC = "bench.api.scans"


def raw_produce(settings: Settings, values: list[tuple[bytes, bytes]]) -> float:
    producer = qkafka.producer(settings, **{"queue.buffering.max.messages": 1_000_000})
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


def _client(port: int, key: str, bodies: list[bytes], out) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.connect()
    # like wrk and other load generators: without it, the request's last partial segment waits for
    # the server's delayed ACK (Nagle), tens of milliseconds per request that the API never sees
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    t0 = time.perf_counter()
    for body in bodies:
        conn.request("POST", "/v1/scans", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 202, resp.status
    out.put((t0, time.perf_counter()))


def batch_ingest(port: int, key: str, payloads: list[dict], clients: int) -> float:
    bodies = [json.dumps(payloads[i:i + 500]).encode() for i in range(0, len(payloads), 500)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(port, key, bodies[c::clients], out)) for c in range(clients)]
    for p in procs:
        p.start()
    spans = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return len(payloads) / (max(e for _, e in spans) - min(s for s, _ in spans))


def wrk_single(port: int, key: str, seconds: int, connections: int) -> tuple[float, float, float, str]:
    body = json.dumps(scan_payload("wrk-phone")).replace("\\", "\\\\").replace('"', '\\"')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.body = "{body}"\n'
                     f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-API-Key"] = "{key}"\n'
                     'done = function(summary, latency, requests)\n'
                     '  io.write(string.format("QN %d %d %d %f %f\\n", summary.requests, summary.errors.status,'
                     ' summary.duration, latency:percentile(50), latency:percentile(99)))\nend\n')
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
                          f"http://127.0.0.1:{port}/v1/scans"], capture_output=True, text=True, check=True).stdout
    requests, bad_status, duration_us, p50_us, p99_us = re.search(r"QN (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)", out).groups()
    assert int(bad_status) == 0, out
    return int(requests) / (int(duration_us) / 1e6), float(p50_us) / 1000, float(p99_us) / 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    base = Settings()
    admin = qkafka.admin(base)
    admin.delete_topics([TOPIC])
    time.sleep(1)
    admin.create_topics([NewTopic(TOPIC, 6, 1)])[TOPIC].result(timeout=30)
    rng = random.Random(1)
    now = dt.datetime.now(dt.timezone.utc)
    payloads = [scan_payload(f"phone-{i % 5000}", rng=rng) for i in range(args.scans)]
    values = [(p["device_id"].encode(), encode(Scan.received(validate_submission(p, now), now))) for p in payloads]

    with tempfile.TemporaryDirectory(prefix="qn-bench-api-") as tmp:
        settings = base.model_copy(update={"home": Path(tmp), "lib": base.lib_dir, "api_port": free_port(),
                                           "scans_topic": TOPIC, "api_workers": 2})
        key = add_key(settings.api_keys_path, "bench", {SCOPE_WRITE_SCANS}, 10_000_000)
        sup = Supervisor(settings)
        sup.start(API)
        try:
            raw = raw_produce(base, values)
            workers = psutil.Process(sup.process(API).pid).children()
            broker = Supervisor(base).process(KAFKA)
            watched = {"API workers": workers, "Kafka broker": [broker] if broker else []}
            cpu0 = {name: sum(sum(p.cpu_times()[:2]) for p in procs) for name, procs in watched.items()}
            t0 = time.perf_counter()
            batch = batch_ingest(settings.api_port, key, payloads, args.clients)
            wall = time.perf_counter() - t0
            cpu = {name: sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0[name] for name, procs in watched.items()}
            rps, p50, p99, _ = wrk_single(settings.api_port, key, args.seconds, args.connections)
            rss = [w.memory_info().rss / 2**20 for w in workers]
        finally:
            sup.stop(API)
    admin.delete_topics([TOPIC])
    print(f"scans                         {args.scans:,} (JSON {sum(len(v) for _, v in values) / len(values):.0f} B each on Kafka)")
    print(f"(a) raw confluent-kafka       {raw:>10,.0f} scans/s   (baseline)")
    print(f"(b) API batches of 500        {batch:>10,.0f} scans/s   {batch / raw:.0%} of (a)  (target >= 50%), {args.clients} client processes")
    print(f"(c) API single scans (wrk)    {rps:>10,.0f} requests/s  p50 {p50:.1f} ms  p99 {p99:.1f} ms  "
          f"(target >= 2,000/s, p99 < 50 ms), {args.connections} connections, {args.seconds}s")
    print("CPU during (b)                " + ", ".join(f"{n} {c:.1f} s" for n, c in cpu.items())
          + f" over {wall:.1f} s wall on {psutil.cpu_count()} cores (the rest: client processes, librdkafka threads)")
    print(f"gunicorn workers              {len(rss)} x gthread({settings.api_threads}); RSS " + ", ".join(f"{r:.0f} MiB" for r in rss))


if __name__ == "__main__":
    main()
