"""quacknet: operate a QuackNet deployment.

Commands that production needs: apply the ClickHouse migrations, create API keys. The local
development stack has its own command (python -m devtools).
"""

from __future__ import annotations

import argparse
import sys

from quacknet import apikeys, warehouse
from quacknet.errors import QuackNetError
from quacknet.logs import configure_logging
from quacknet.settings import Settings
from quacknet.warehouse.migrations import LATEST, migrate


def cmd_migrate(settings: Settings, args) -> int:
    """Bring the ClickHouse database to the schema this code needs (idempotent)."""
    client = warehouse.client(settings)
    try:
        applied = migrate(client, settings.clickhouse_database)
    finally:
        client.close()
    for version in applied:
        print(f"clickhouse {settings.clickhouse_database}: migration {version} applied")
    if not applied:
        print(f"clickhouse {settings.clickhouse_database}: at schema version {LATEST}, nothing to apply")
    return 0


def cmd_api_key(settings: Settings, args) -> int:
    """Create (or replace) a named API key; its plaintext is printed once, only its hash is kept."""
    scopes = set(args.scope or [apikeys.SCOPE_WRITE_SCANS])
    key = apikeys.add_key(settings.api_keys_path, args.name, scopes, args.rate)
    print(f"api key {args.name!r} (scopes {', '.join(sorted(scopes))}, {args.rate} requests/s): {key}")
    print(f"hash stored in {settings.api_keys_path}; restart the API to load it")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="quacknet", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply the ClickHouse migrations").set_defaults(fn=cmd_migrate)
    p = sub.add_parser("api-key", help="create an API key for the ingest API")
    p.add_argument("name")
    p.add_argument("--scope", action="append", default=None, help=f"repeatable; default {apikeys.SCOPE_WRITE_SCANS}")
    p.add_argument("--rate", type=int, default=apikeys.DEFAULT_RATE_PER_S, help="requests per second")
    p.set_defaults(fn=cmd_api_key)
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
