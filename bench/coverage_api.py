"""Benchmark: GET /v1/coverage at a steady request rate over N stored scans, against the same
query sent straight to ClickHouse in the same run.

Generates N scans (default 1,000,000) over Germany and the last 30 days, half of them around five
cities, directly in ClickHouse (``INSERT ... SELECT FROM numbers``) in a fresh database; starts the
API under gunicorn (the stack's worker settings) on that database; then

(a) the baseline: ``quacknet.coverage.cells`` for a city-sized box over one week, sequentially,
    straight through clickhouse-connect (the warehouse's own time);
(b) the API: the same kind of request over HTTP, sent open-loop at a fixed rate (each request
    leaves at its scheduled time, whether or not the previous ones have answered, so a slow
    answer cannot hide the queueing it causes), p50/p99 measured from the scheduled time.

Needs the local stack's ClickHouse (`make run`). Prints figures; asserts every answer was a 200.

    .venv/bin/python -m bench.coverage_api [--scans 1000000] [--rate 5] [--seconds 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from devtools.services import API
from devtools.settings import DevSettings
from devtools.supervisor import Supervisor, free_port
from quacknet import coverage, warehouse
from quacknet.apikeys import SCOPE_READ_COVERAGE, add_key
from quacknet.warehouse.migrations import migrate

CITIES = {"Berlin": (52.52, 13.40), "Hamburg": (53.55, 9.99), "Munich": (48.14, 11.58), "Cologne": (50.94, 6.96),
          "Frankfurt": (50.11, 8.68)}
BOX = (0.17, 0.08)  # degrees of longitude and latitude: a city's centre and surroundings

GENERATE = """
INSERT INTO {db}.scans_store (scan_id, device_id, observed_at, received_at, lat, lon, accuracy_m, technology, mcc, mnc,
                              carrier, rsrp, download_kbps, app_version, schema_version, kafka_topic, kafka_partition,
                              kafka_offset)
SELECT generateUUIDv4(number), concat('dev-', toString(number % 50000)),
       now64(3) - toIntervalMillisecond(rand(1) % (30 * 86400000)) AS t, t,
       if(number % 2 = 0, [{lats}][number % 10 % 5 + 1] + (randNormal(0, 0.03)), 47.3 + randUniform(0, 7.7)) AS lat,
       if(number % 2 = 0, [{lons}][number % 10 % 5 + 1] + (randNormal(0, 0.05)), 5.9 + randUniform(0, 9.1)) AS lon,
       10, ['LTE', 'NR-SA', 'UMTS', 'WIFI'][rand(4) % 4 + 1] AS tech, if(tech = 'WIFI', NULL, '262'),
       if(tech = 'WIFI', NULL, '01'), 'Telekom.de', if(tech IN ('LTE', 'NR-SA'), -140 + rand(5) % 80, NULL),
       rand(6) % 200000, '3.2.1', 1, 'bench', 0, number
FROM numbers({n})
"""


def city_query(rng: random.Random, now: dt.datetime) -> tuple[str, str, str]:
    lat, lon = rng.choice(list(CITIES.values()))
    bbox = f"{lon - BOX[0] / 2:.4f},{lat - BOX[1] / 2:.4f},{lon + BOX[0] / 2:.4f},{lat + BOX[1] / 2:.4f}"
    until = now - dt.timedelta(days=rng.randrange(20))
    since = until - dt.timedelta(days=7)
    return bbox, since.isoformat().replace("+00:00", "Z"), until.isoformat().replace("+00:00", "Z")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second offered to the API")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--baseline", type=int, default=100, help="direct queries for the baseline")
    args = parser.parse_args()
    base = DevSettings()
    database = f"bench_coverage_{uuid.uuid4().hex[:6]}"
    client = warehouse.client(base)
    migrate(client, database)
    t0 = time.perf_counter()
    client.command(GENERATE.format(db=database, n=args.scans, lats=", ".join(str(c[0]) for c in CITIES.values()),
                                   lons=", ".join(str(c[1]) for c in CITIES.values())))
    client.command(f"OPTIMIZE TABLE {database}.scans_store FINAL")
    print(f"stored                  {client.command(f'SELECT count() FROM {database}.scans'):,} scans "
          f"in {time.perf_counter() - t0:.1f} s ({database})")
    now, rng = dt.datetime.now(dt.UTC), random.Random(5)

    direct = []
    for _ in range(args.baseline):
        query = coverage.build_query(*city_query(rng, now))
        started = time.perf_counter()
        found = coverage.cells(client, database, query)
        direct.append(time.perf_counter() - started)
    print(f"(a) ClickHouse direct   p50 {percentile(direct, 50) * 1000:7.1f} ms  p99 {percentile(direct, 99) * 1000:7.1f} ms"
          f"  ({args.baseline} sequential queries; the last had {len(found)} cells)")

    settings = base.model_copy(update={"home": base.home / "bench-coverage", "api_port": free_port(),
                                       "clickhouse_database": database})
    key = add_key(settings.api_keys_path, "bench", {SCOPE_READ_COVERAGE}, 1_000_000)
    sup = Supervisor(settings)
    sup.start(API)
    latencies, statuses, lock = [], [], threading.Lock()

    def fetch(scheduled: float, params: tuple[str, str, str]) -> None:
        bbox, since, until = params
        url = f"http://127.0.0.1:{settings.api_port}/v1/coverage?bbox={bbox}&since={since}&until={until}"
        request = urllib.request.Request(url, headers={"X-API-Key": key})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        with lock:
            latencies.append(time.perf_counter() - scheduled)
            statuses.append(status)

    try:
        total = int(args.rate * args.seconds)
        with ThreadPoolExecutor(64) as pool:
            start = time.perf_counter() + 0.5
            for i in range(total):
                scheduled = start + i / args.rate
                time.sleep(max(0.0, scheduled - time.perf_counter()))
                pool.submit(fetch, scheduled, city_query(rng, now))
    finally:
        sup.stop(API)
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        client.close()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"(b) GET /v1/coverage    p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  at {args.rate:g} requests/s for "
          f"{args.seconds:g} s ({len(latencies)} requests, open loop)")
    print(f"(b) / (a)               p50 {p50 / percentile(direct, 50):.2f}x  p99 {p99 / percentile(direct, 99):.2f}x "
          "(HTTP, auth, JSON and GeoJSON on top of the warehouse's time, under load)")
    assert set(statuses) == {200}, sorted(set(statuses))


if __name__ == "__main__":
    main()
