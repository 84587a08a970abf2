"""Benchmark: 1 M narrow rows inserted through the local ClickHouse gateway vs in-process chDB.

Both sides use the same clickhouse-connect client code (Native encoding, lz4 over HTTP for the
gateway; clickhouse-connect's in-process chDB backend for the baseline), so the ratio isolates
the cost of the HTTP hop and the gateway. Each side runs in its own process on its own data dir
(one chDB engine per process), measured in the same run, alternating. Target: ratio <= 1.3.

    .venv/bin/python -m bench.gateway_insert [--rows 1000000] [--reps 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

DDL = "CREATE TABLE IF NOT EXISTS bench.narrow (k UInt64, v UInt32, f Float64) ENGINE = MergeTree ORDER BY k"


def _columns(rows: int):
    return [list(range(rows)), [i % 100_000 for i in range(rows)], [i * 0.5 for i in range(rows)]]


def _measure(client, rows: int, reps: int) -> list[float]:
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    client.command(DDL)
    cols = _columns(rows)
    times = []
    for _ in range(reps):
        client.command("TRUNCATE TABLE bench.narrow")
        t0 = time.perf_counter()
        client.insert("bench.narrow", cols, column_names=["k", "v", "f"], column_oriented=True)
        times.append(time.perf_counter() - t0)
        assert client.command("SELECT count() FROM bench.narrow") == rows
    return times


def _inprocess(path: str, rows: int, reps: int, out) -> None:
    import clickhouse_connect

    out.put(_measure(clickhouse_connect.get_client(interface="chdb", path=path), rows, reps))


def _gateway(url: str, compress, rows: int, reps: int, out) -> None:
    import clickhouse_connect

    out.put(_measure(clickhouse_connect.get_client(dsn=url, compress=compress), rows, reps))


def _in_child(target, *args) -> list[float]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    result = out.get(timeout=900)
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    from devtools.services import CLICKHOUSE
    from devtools.settings import DevSettings
    from devtools.supervisor import Supervisor, free_port

    with tempfile.TemporaryDirectory(prefix="qn-bench-") as tmp:
        settings = DevSettings(home=Path(tmp) / "gw", clickhouse_url=f"http://127.0.0.1:{free_port()}", log_json=True)
        # the gateway wants the generated login (settings carry it); in the URL, for the child processes
        url = settings.clickhouse_url.replace(
            "://", f"://{settings.clickhouse_user}:{settings.clickhouse_password.get_secret_value()}@")
        sup = Supervisor(settings)
        sup.start(CLICKHOUSE)
        try:
            inproc, lz4, plain = [], [], []
            for _ in range(2):  # alternate sides so machine noise hits all of them
                inproc += _in_child(_inprocess, str(Path(tmp) / "inproc"), args.rows, args.reps)
                lz4 += _in_child(_gateway, url, "lz4", args.rows, args.reps)
                plain += _in_child(_gateway, url, False, args.rows, args.reps)
        finally:
            sup.stop(CLICKHOUSE)
    base = statistics.median(inproc)
    print(f"rows per insert              {args.rows:,}  (k UInt64, v UInt32, f Float64), {len(inproc)} inserts per side")
    for label, times in [("in-process chDB (baseline)", inproc), ("gateway, lz4 (client default)", lz4),
                         ("gateway, uncompressed", plain)]:
        med = statistics.median(times)
        print(f"{label:30s} median {med:.3f} s  {args.rows / med:>12,.0f} rows/s  min {min(times):.3f}  max {max(times):.3f}"
              f"  ratio {med / base:.2f}x")
    print("target: gateway (client default, lz4) within 1.30x of in-process")


if __name__ == "__main__":
    main()
