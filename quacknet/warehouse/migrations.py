"""Versioned, idempotent ClickHouse migrations, and the check every component makes at start.

Applied by one step only: ``python -m quacknet migrate`` (``make run`` and compose's init run it).
The loader, replays and the audit call ``require_current`` instead, and refuse to run against an
older schema with a message that says what to do. Each version is recorded in
``<db>.schema_migrations``. Every step is safe to re-run (``IF NOT EXISTS``, or a step that looks
at the schema before it acts), so a migration that crashed part-way is finished by running it
again. Run one migrator at a time (``make run``, compose's init and the CLI are each one step):
migration 4 swaps tables.

The scans design (docs/ARCHITECTURE.md, chosen by measurement: bench/store_design.py):
- ``scans_store``: a ReplacingMergeTree ordered by ``scan_id`` alone, not partitioned, versioned by
  ``version`` = (``received_at``, Kafka partition, Kafka offset). Nothing else is in the key, so every
  copy of a scan collapses into one row, whatever its other fields say: the copy received last wins;
  of copies received in the same millisecond, the one at the higher Kafka partition, then offset.
  (Migration 1's design ordered by phone-given fields; copies that differed in them never collapsed.)
- ``scans``: the view analysts query, ``FINAL``, so a plain ``count()`` is already exact.
- ``h3_r8``: the H3 cell (resolution 8) of each scan, computed by ClickHouse's ``geoToH3``.
- ``kafka_topic/partition/offset``: lineage of each row, for completeness checks and replays.
- ``scan_copies``: every stored message's lineage and a hash of its contents (filled by a
  materialized view on ``scans_store``), so the copies a scan's row superseded stay visible
  (``scan_lineage``: per scan, its copies and how many of them differed in contents).
- ``load_ledger``: the offset ranges each loader batch and replay stored, for the completeness audit.

On a cluster (``QUACKNET_CLICKHOUSE_CLUSTER``) every statement runs ``ON CLUSTER``: the scans
tables are Replicated per shard with a ``Distributed`` table of the same name in front, sharded by
``SHARDING_KEY`` (a function of ``scan_id`` only, so all copies of a scan meet on one shard and
collapse there); the small tables (ledger, findings, versions) are replicated on every node.
docs/cluster.md tells how to operate it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from quacknet.errors import Conflict, SchemaBehind
from quacknet.logs import get_logger
from quacknet.scan.columns import CLICKHOUSE_TYPES, LINEAGE, ROW_COLUMNS

log = get_logger(__name__)

H3_RESOLUTION = 8
# Berlin, at resolution 8, when geoToH3 takes (lat, lon): the order ClickHouse 25.5+ uses by default.
H3_PROBE = ("SELECT geoToH3(52.52, 13.40, 8) = 0x881f1d4895fffff", 1)
MIGRATE_COMMAND = "python -m quacknet migrate"

# Which shard a row goes to on a cluster: a hash of scan_id and of nothing else (docs/cluster.md).
SHARDING_KEY = "cityHash64(scan_id)"
# Keeper paths: per shard for the scans tables, one group of every node for the small tables.
# {uuid} rather than the table's name: the path survives the EXCHANGE/RENAME of migration 4.
KEEPER_PATH_SHARDED = "/clickhouse/tables/{uuid}/{shard}"
KEEPER_PATH_EVERY_NODE = "/clickhouse/tables/{uuid}/all"
REPLICA_NAME = "{replica}"

# A copy's contents: every field the phone sent (all but scan_id and the server's received_at).
CONTENT_COLUMNS = [c for c in CLICKHOUSE_TYPES if c not in ("scan_id", "received_at")]
CONTENT_HASH = f"cityHash64(tuple({', '.join(CONTENT_COLUMNS)}))"
# The store's version: received_at (ms) in the high 64 bits, the Kafka position below it.
VERSION = ("bitShiftLeft(toUInt128(toUnixTimestamp64Milli(received_at)), 64)"
           " + bitShiftLeft(toUInt128(kafka_partition), 48) + toUInt128(least(kafka_offset, 281474976710655))")


@dataclass(frozen=True)
class Layout:
    """Where the schema lives: one server (``cluster`` None) or a sharded, replicated cluster."""

    cluster: str | None = None

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    def local(self, table: str) -> str:
        """The table holding a shard's rows: ``<table>_local`` behind a Distributed ``<table>`` on a cluster."""
        return f"{table}_local" if self.cluster else table

    def engine(self, family: str, *args: str, every_node: bool = False) -> str:
        """``family(args)``, or its Replicated form on a cluster (Keeper path, replica name, args)."""
        if self.cluster:
            path = KEEPER_PATH_EVERY_NODE if every_node else KEEPER_PATH_SHARDED
            args = (f"'{path}'", f"'{REPLICA_NAME}'", *args)
            family = f"Replicated{family}"
        return f"{family}({', '.join(args)})" if args else family

    def distributed(self, table: str) -> tuple[str, ...]:
        """On a cluster, the Distributed ``table`` in front of ``table_local``; nothing on one server."""
        if not self.cluster:
            return ()
        return (f"CREATE TABLE IF NOT EXISTS {{db}}.{table}{self.on_cluster} AS {{db}}.{table}_local\n"
                f"ENGINE = Distributed({self.cluster}, {{db}}, {table}_local, {SHARDING_KEY})",)


SINGLE_SERVER = Layout()
Step = str | Callable[[Client, str, Layout], None]  # SQL with {db}, or a step that looks before it acts


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    build: Callable[[Layout], tuple[Step, ...]]

    def steps(self, layout: Layout = SINGLE_SERVER) -> tuple[Step, ...]:
        return self.build(layout)

    def statements(self, layout: Layout = SINGLE_SERVER) -> tuple[str, ...]:
        """The SQL of this migration's steps (the Python steps issue theirs as they go)."""
        return tuple(step for step in self.steps(layout) if isinstance(step, str))


def _columns() -> str:
    return ",\n    ".join(f"{name} {ch_type}" for name, ch_type in {**CLICKHOUSE_TYPES, **LINEAGE}.items())


# -- 1: the store as it was designed first (ordered by phone-given fields), and the exact view ------

def _v1(layout: Layout) -> tuple[Step, ...]:
    store = layout.local("scans_store")
    view_columns = VIEW_COLUMNS
    return (
        f"""CREATE TABLE IF NOT EXISTS {{db}}.{store}{layout.on_cluster} (
    {_columns()},
    h3_r8 UInt64 MATERIALIZED geoToH3(lat, lon, {H3_RESOLUTION}),
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = {layout.engine("ReplacingMergeTree", "received_at")}
PARTITION BY toYYYYMM(observed_at)
ORDER BY (h3_r8, technology, observed_at, scan_id)""",
        *layout.distributed("scans_store"),
        f"CREATE VIEW IF NOT EXISTS {{db}}.scans{layout.on_cluster} AS SELECT {view_columns} FROM {{db}}.scans_store FINAL",
    )


VIEW_COLUMNS = ", ".join([*CLICKHOUSE_TYPES, *LINEAGE, "h3_r8", "loaded_at"])
# Under FINAL ClickHouse moves only conditions on the sorting key (here scan_id alone) to PREWHERE,
# so a lookup by scan_id reads the matching rows only, and any other condition still applies to
# the row FINAL kept (with several parts unmerged: 2-4x faster lookups, measured for issue 14).
SCANS_VIEW = ("CREATE OR REPLACE VIEW {{db}}.scans{on} AS SELECT {columns} FROM {{db}}.scans_store FINAL "
              "SETTINGS optimize_move_to_prewhere_if_final = 1")


# -- 2, 3: the audit's findings and the load ledger --------------------------------------------------

def _v2(layout: Layout) -> tuple[Step, ...]:
    return (f"""CREATE TABLE IF NOT EXISTS {{db}}.audit_findings{layout.on_cluster} (
    run_at DateTime64(3, 'UTC'), check LowCardinality(String), subject String, topic String, partition Int32,
    ok Bool, value Float64, limit Float64, message String
) ENGINE = {layout.engine("MergeTree", every_node=True)} PARTITION BY toYYYYMM(run_at) ORDER BY (run_at, check, topic, partition)
TTL toDateTime(run_at) + INTERVAL 90 DAY""",)


# Which Kafka offset ranges the loader and replays have stored (``pipeline.store``), kept longer
# than any topic's retention so the completeness audit can cover all of Kafka.
def _v3(layout: Layout) -> tuple[Step, ...]:
    return (f"""CREATE TABLE IF NOT EXISTS {{db}}.load_ledger{layout.on_cluster} (
    topic LowCardinality(String), partition UInt16, first_offset UInt64, last_offset UInt64,
    source LowCardinality(String), loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = {layout.engine("MergeTree", every_node=True)} ORDER BY (topic, partition, first_offset)
TTL toDateTime(loaded_at) + INTERVAL 90 DAY""",)


# -- 4: one row per scan_id whatever its copies differ in --------------------------------------------

def scans_store_ddl(layout: Layout, table: str) -> str:
    """The store keyed by scan_id alone (see the module's docstring)."""
    return f"""CREATE TABLE IF NOT EXISTS {{db}}.{table}{layout.on_cluster} (
    {_columns()},
    h3_r8 UInt64 MATERIALIZED geoToH3(lat, lon, {H3_RESOLUTION}),
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3),
    version UInt128 MATERIALIZED {VERSION}
) ENGINE = {layout.engine("ReplacingMergeTree", "version")}
ORDER BY scan_id"""


COPY_COLUMNS = ["scan_id", "content_hash", "received_at", "device_id", *LINEAGE]


def _v4(layout: Layout) -> tuple[Step, ...]:
    store, copies = layout.local("scans_store"), layout.local("scan_copies")
    return (
        # Every stored message's lineage and contents' hash. Replays re-store the same message: its
        # Kafka position is the key, so they collapse.
        f"""CREATE TABLE IF NOT EXISTS {{db}}.{copies}{layout.on_cluster} (
    scan_id UUID, content_hash UInt64, received_at DateTime64(3, 'UTC'), device_id String,
    kafka_topic LowCardinality(String), kafka_partition UInt16, kafka_offset UInt64,
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = {layout.engine("ReplacingMergeTree")}
ORDER BY (scan_id, kafka_topic, kafka_partition, kafka_offset)""",
        *layout.distributed("scan_copies"),
        # On the *name* of the store: it fires for the old store until the swap and for the new one
        # after it, and for the copy of the old rows, so nothing written meanwhile misses its lineage.
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.scan_copies_mv{layout.on_cluster} TO {{db}}.{copies} AS
SELECT scan_id, {CONTENT_HASH} AS content_hash, received_at, device_id, kafka_topic, kafka_partition, kafka_offset
FROM {{db}}.{store}""",
        scans_store_ddl(layout, f"{store}_next"),
        _swap_in_the_new_store,
        _copy_the_old_store,
        SCANS_VIEW.format(on=layout.on_cluster, columns=VIEW_COLUMNS),
        f"""CREATE VIEW IF NOT EXISTS {{db}}.scan_lineage{layout.on_cluster} AS
SELECT scan_id, count() AS copies, uniqExact(content_hash) AS contents, contents - 1 AS superseded_differing,
       arraySort(c -> (c.1, c.4, c.5), groupArray((received_at, device_id, kafka_topic, kafka_partition, kafka_offset,
                                                     content_hash))) AS seen
FROM {{db}}.scan_copies FINAL GROUP BY scan_id""",
    )


def _sorting_key(client: Client, database: str, table: str) -> str | None:
    rows = client.query("SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                        parameters={"db": database, "t": table}).result_rows
    return rows[0][0] if rows else None


def _swap_in_the_new_store(client: Client, database: str, layout: Layout) -> None:
    """Atomically put the scan_id-keyed store in place (EXCHANGE), then keep the old one aside as
    ``<store>_v3`` for the copy. Writers never see a missing table, and whatever they write from the
    exchange on lands in the new store. Re-runnable after a crash at any point."""
    store = layout.local("scans_store")
    if _sorting_key(client, database, store) != "scan_id":
        client.command(f"EXCHANGE TABLES {database}.{store} AND {database}.{store}_next{layout.on_cluster}")
    aside = _sorting_key(client, database, f"{store}_next")
    if aside is not None and aside != "scan_id" and _sorting_key(client, database, f"{store}_v3") is None:
        client.command(f"RENAME TABLE {database}.{store}_next TO {database}.{store}_v3{layout.on_cluster}")
    elif aside == "scan_id":  # an empty new store left over from a run that had already swapped
        client.command(f"DROP TABLE IF EXISTS {database}.{store}_next{layout.on_cluster} SYNC")


def _copy_the_old_store(client: Client, database: str, layout: Layout) -> None:
    """Copy the old store's rows into the new one, month by month (its partitions), then check that
    every scan_id of each month is in the new store before the old store is dropped. Copies of one
    scan (also those the old design kept apart) collapse in the new store by its version; repeating
    a month after a crash changes nothing."""
    old = f"{layout.local('scans_store')}_v3"
    if _sorting_key(client, database, old) is None:
        return
    source = f"cluster('{layout.cluster}', {database}, {old})" if layout.cluster else f"{database}.{old}"
    columns = ", ".join(ROW_COLUMNS)
    month = "toYYYYMM(observed_at) = {month:UInt32}"  # the old store's partition key: whole partitions
    unlimited = {"max_execution_time": 0}
    for (value,) in client.query(f"SELECT DISTINCT toYYYYMM(observed_at) FROM {source} ORDER BY 1").result_rows:
        at = {"month": value}
        client.command(f"INSERT INTO {database}.scans_store ({columns}) SELECT {columns} FROM {source} WHERE {month}",
                       parameters=at, settings={**unlimited, "distributed_foreground_insert": 1})
        had = client.command(f"SELECT uniqExact(scan_id) FROM {source} WHERE {month}", parameters=at)
        has = client.command(f"SELECT uniqExact(scan_id) FROM {database}.scans_store "
                             f"WHERE scan_id GLOBAL IN (SELECT scan_id FROM {source} WHERE {month})",
                             parameters=at, settings=unlimited)
        if has != had:
            raise Conflict(f"migrating {database}.scans_store: month {value} held {had} scans, the new store "
                           f"{has}; the old store is kept as {database}.{old}")
        log.info("warehouse.migrated_month", database=database, month=value, scans=had)
    client.command(f"DROP TABLE IF EXISTS {database}.{old}{layout.on_cluster} SYNC")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "scans store and exact view", _v1),
    Migration(2, "retention audit findings", _v2),
    Migration(3, "load ledger", _v3),
    Migration(4, "one row per scan_id: the store keyed by scan_id, copies' lineage", _v4),
)
LATEST = MIGRATIONS[-1].version


def schema_migrations_ddl(layout: Layout) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {{db}}.schema_migrations{layout.on_cluster} (
    version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = {layout.engine("ReplacingMergeTree", every_node=True)} ORDER BY version"""


def plan(layout: Layout = SINGLE_SERVER) -> list[Step]:
    """Every step ``migrate`` may take on an empty database, in order (the SQL with ``{db}`` unfilled)."""
    return [f"CREATE DATABASE IF NOT EXISTS {{db}}{layout.on_cluster}", schema_migrations_ddl(layout),
            *(step for m in MIGRATIONS for step in m.steps(layout))]


def migrate(client: Client, database: str, cluster: str | None = None) -> list[int]:
    """Bring ``database`` to the newest version; returns the versions applied now. ``cluster``:
    the DDL runs ON CLUSTER with Replicated and Distributed tables (``Settings.clickhouse_cluster``)."""
    layout = Layout(cluster)
    probe, expected = H3_PROBE
    if client.command(probe) != expected:
        raise Conflict("this ClickHouse computes geoToH3 with (lon, lat): set geotoh3_argument_order='lat_lon'")
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}{layout.on_cluster}")
    client.command(schema_migrations_ddl(layout).replace("{db}", database))
    done = applied_versions(client, database)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for step in migration.steps(layout):
            if isinstance(step, str):
                client.command(step.replace("{db}", database))
            else:
                step(client, database, layout)
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
