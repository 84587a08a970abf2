"""quacknet: operate and query a QuackNet deployment.

  migrate     apply the ClickHouse migrations (idempotent)
  kafka-acls  create the ACLs each service's Kafka principal needs (idempotent; run as an operator's principal)
  api-key     create an API key for the ingest API
  coverage    H3 cells with their figures in a bounding box and time window (a table, or --json)

The local development stack has its own command (python -m devtools).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from quacknet import acls, apikeys, coverage, kafka, warehouse
from quacknet.errors import QuackNetError
from quacknet.logs import configure_logging
from quacknet.settings import Settings
from quacknet.warehouse.migrations import LATEST, migrate, require_current


def cmd_migrate(settings: Settings, args) -> int:
    """Bring the ClickHouse database to the schema this code needs (idempotent)."""
    client = warehouse.client(settings)
    try:
        applied = migrate(client, settings.clickhouse_database, cluster=settings.clickhouse_cluster)
    finally:
        client.close()
    for version in applied:
        print(f"clickhouse {settings.clickhouse_database}: migration {version} applied")
    if not applied:
        print(f"clickhouse {settings.clickhouse_database}: at schema version {LATEST}, nothing to apply")
    return 0


def cmd_kafka_acls(settings: Settings, args) -> int:
    """The declared ACLs (quacknet.acls) for the settings' topics, group and principals; prints what it created."""
    created = acls.apply(kafka.admin(settings), acls.grants(settings))
    for grant in created:
        print(f"created: {grant}")
    print(f"kafka ACLs: {len(created)} created" if created else "kafka ACLs: as declared, nothing to change")
    return 0


def cmd_api_key(settings: Settings, args) -> int:
    """Create (or replace) a named API key; its plaintext is printed once, only its hash is kept."""
    scopes = set(args.scope or [apikeys.SCOPE_WRITE_SCANS])
    key = apikeys.add_key(settings.api_keys_path, args.name, scopes, args.rate)
    print(f"api key {args.name!r} (scopes {', '.join(sorted(scopes))}, {args.rate} requests/s): {key}")
    print(f"hash stored in {settings.api_keys_path}; restart the API to load it")
    return 0


def cmd_coverage(settings: Settings, args) -> int:
    """Cells of a box as a table (or GeoJSON with --json); the elapsed time is shown on stderr while
    the warehouse works, so a long query is visibly alive."""
    query = coverage.build_query(args.bbox, args.since, args.until, args.technology)
    client = warehouse.client(settings, autogenerate_session_id=False)
    try:
        require_current(client, settings.clickhouse_database)
        found = _with_progress(lambda: coverage.cells(client, settings.clickhouse_database, query), args.quiet)
    finally:
        client.close()
    if args.json:
        print(json.dumps(coverage.feature_collection(found, query), indent=2))
        return 0
    rows = [["H3 CELL", "TECHNOLOGY", "SCANS", "MEDIAN RSRP (dBm)", "MEDIAN DOWNLOAD (Mbit/s)"]]
    for cell in sorted(found, key=lambda c: -c.scans):
        for name, t in sorted(cell.technologies.items()):
            rows.append([cell.h3, name, f"{t.scans:,}", _num(t.median_rsrp_dbm), _num(t.median_download_kbps, 1000)])
    print(_table(rows))
    print(f"{len(found):,} cell{'' if len(found) == 1 else 's'}, {sum(c.scans for c in found):,} scans, {query.start:%Y-%m-%d %H:%M} to "
          f"{query.end:%Y-%m-%d %H:%M} UTC")
    return 0


def _with_progress(work, quiet: bool):
    done, box = threading.Event(), {}

    def run():
        try:
            box["result"] = work()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    started = time.monotonic()
    threading.Thread(target=run, daemon=True).start()
    while not done.wait(0.5):
        if not quiet:
            print(f"\rquerying ClickHouse... {time.monotonic() - started:.1f} s", end="", file=sys.stderr, flush=True)
    if not quiet and time.monotonic() - started >= 0.5:
        print(f"\rquerying ClickHouse... done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    if "error" in box:
        raise box["error"]
    return box["result"]


def _num(value: float | None, divide: float = 1) -> str:
    return "-" if value is None else f"{value / divide:,.1f}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="quacknet", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply the ClickHouse migrations").set_defaults(fn=cmd_migrate)
    sub.add_parser("kafka-acls", help="create the ACLs each service's Kafka principal needs").set_defaults(fn=cmd_kafka_acls)
    p = sub.add_parser("api-key", help="create an API key for the ingest API")
    p.add_argument("name")
    p.add_argument("--scope", action="append", default=None, help=f"repeatable; default {apikeys.SCOPE_WRITE_SCANS}")
    p.add_argument("--rate", type=int, default=apikeys.DEFAULT_RATE_PER_S, help="requests per second")
    p.set_defaults(fn=cmd_api_key)
    p = sub.add_parser("coverage", help="H3 cells with their figures in a bounding box and time window")
    p.add_argument("--bbox", required=True, help="minLon,minLat,maxLon,maxLat, e.g. 13.30,52.48,13.47,52.56")
    p.add_argument("--since", required=True, help="ISO 8601 with a timezone, e.g. 2026-11-23T00:00:00Z")
    p.add_argument("--until", default=None, help="exclusive; default: now")
    p.add_argument("--technology", default=None, help="e.g. LTE, NR-SA, WIFI")
    p.add_argument("--json", action="store_true", help="print GeoJSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(fn=cmd_coverage)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    try:
        return args.fn(settings, args)
    except QuackNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if exc.retriable else 2


if __name__ == "__main__":
    sys.exit(main())
