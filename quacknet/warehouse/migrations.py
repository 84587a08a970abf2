"""Versioned, idempotent ClickHouse migrations, and the check every component makes at start.

Applied by one step only: ``python -m quacknet migrate`` (``make run`` and compose's init run it).
The loader, replays and the audit call ``require_current`` instead, and refuse to run against an
older schema with a message that says what to do. Each version is recorded in
``<db>.schema_migrations``. Statements are safe to re-run (IF NOT EXISTS), so a crash between a
statement and its record, or two processes migrating at once, does no harm.

The scans design (docs/ARCHITECTURE.md):
- ``scans_store``: ReplacingMergeTree partitioned by month of ``observed_at``, ordered for
  analysts (H3 cell, technology, time) and ending in ``scan_id``. Every sorting-key column comes
  from the phone, so a phone retry, a spool re-send and a replay of the same scan collapse into
  one row; of such copies the one with the latest ``received_at`` wins.
- ``scans``: the view analysts query, ``FINAL``, so a plain ``count()`` is already exact.
- ``h3_r8``: the H3 cell (resolution 8) of each scan, computed by ClickHouse's ``geoToH3``.
- ``kafka_topic/partition/offset``: lineage of each row, for completeness checks and replays.
- ``load_ledger``: the offset ranges each loader batch and replay stored, for the completeness audit.
"""

from __future__ import annotations

from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from quacknet.errors import Conflict, SchemaBehind
from quacknet.logs import get_logger
from quacknet.scan.columns import CLICKHOUSE_TYPES, LINEAGE

log = get_logger(__name__)

H3_RESOLUTION = 8
# Berlin, at resolution 8, when geoToH3 takes (lat, lon): the order ClickHouse 25.5+ uses by default.
H3_PROBE = ("SELECT geoToH3(52.52, 13.40, 8) = 0x881f1d4895fffff", 1)
MIGRATE_COMMAND = "python -m quacknet migrate"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _scans_store() -> str:
    columns = ",\n    ".join(f"{name} {ch_type}" for name, ch_type in {**CLICKHOUSE_TYPES, **LINEAGE}.items())
    return f"""CREATE TABLE IF NOT EXISTS {{db}}.scans_store (
    {columns},
    h3_r8 UInt64 MATERIALIZED geoToH3(lat, lon, {H3_RESOLUTION}),
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(observed_at)
ORDER BY (h3_r8, technology, observed_at, scan_id)"""


def _scans_view() -> str:
    columns = ", ".join([*CLICKHOUSE_TYPES, *LINEAGE, "h3_r8", "loaded_at"])
    return f"CREATE VIEW IF NOT EXISTS {{db}}.scans AS SELECT {columns} FROM {{db}}.scans_store FINAL"


AUDIT_FINDINGS = """CREATE TABLE IF NOT EXISTS {db}.audit_findings (
    run_at DateTime64(3, 'UTC'), check LowCardinality(String), subject String, topic String, partition Int32,
    ok Bool, value Float64, limit Float64, message String
) ENGINE = MergeTree PARTITION BY toYYYYMM(run_at) ORDER BY (run_at, check, topic, partition)
TTL toDateTime(run_at) + INTERVAL 90 DAY"""

# Which Kafka offset ranges the loader and replays have stored (``pipeline.store``), kept longer
# than any topic's retention so the completeness audit can cover all of Kafka.
LOAD_LEDGER = """CREATE TABLE IF NOT EXISTS {db}.load_ledger (
    topic LowCardinality(String), partition UInt16, first_offset UInt64, last_offset UInt64,
    source LowCardinality(String), loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree ORDER BY (topic, partition, first_offset)
TTL toDateTime(loaded_at) + INTERVAL 90 DAY"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "scans store and exact view", (_scans_store(), _scans_view())),
    Migration(2, "retention audit findings", (AUDIT_FINDINGS,)),
    Migration(3, "load ledger", (LOAD_LEDGER,)),
)
LATEST = MIGRATIONS[-1].version


def migrate(client: Client, database: str) -> list[int]:
    """Bring ``database`` to the newest version; returns the versions applied now."""
    probe, expected = H3_PROBE
    if client.command(probe) != expected:
        raise Conflict("this ClickHouse computes geoToH3 with (lon, lat): set geotoh3_argument_order='lat_lon'")
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(f"""CREATE TABLE IF NOT EXISTS {database}.schema_migrations (
        version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree ORDER BY version""")
    done = applied_versions(client, database)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(statement.format(db=database))
        client.insert(f"{database}.schema_migrations", [(migration.version, migration.name)], column_names=["version", "name"])
        log.info("warehouse.migrated", database=database, version=migration.version, name=migration.name)
        applied.append(migration.version)
    return applied


def applied_versions(client: Client, database: str) -> set[int]:
    exists = client.command("SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'schema_migrations'",
                            parameters={"db": database})
    if not exists:
        return set()
    return {row[0] for row in client.query(f"SELECT version FROM {database}.schema_migrations FINAL").result_rows}


def require_current(client: Client, database: str) -> None:
    """Refuse to run against a schema older than this code (or a database never migrated)."""
    done = applied_versions(client, database)
    missing = sorted({m.version for m in MIGRATIONS} - done)
    if missing:
        have = max(done, default=0)
        raise SchemaBehind(f"ClickHouse database {database!r} is at schema version {have}, this QuackNet needs "
                           f"{LATEST} (missing {', '.join(map(str, missing))}): run `{MIGRATE_COMMAND}` first")
