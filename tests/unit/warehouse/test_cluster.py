"""The schema on a cluster (QUACKNET_CLICKHOUSE_CLUSTER): every statement ON CLUSTER, Replicated
engines on Keeper paths with {shard}/{replica}, a Distributed table in front of each scans table
sharded by scan_id alone, and the compose cluster's config files agreeing with it. (The real
engine parses every statement: tests/integration/test_cluster_ddl.py.)"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from devtools.settings import PROJECT_ROOT
from quacknet.settings import Settings
from quacknet.warehouse.migrations import (
    KEEPER_PATH_EVERY_NODE,
    KEEPER_PATH_SHARDED,
    MIGRATIONS,
    SHARDING_KEY,
    SINGLE_SERVER,
    Layout,
    plan,
)

CLUSTER = Layout("quacknet")
CONFIG = PROJECT_ROOT / "docker" / "clickhouse-cluster"
SHARDED = {"scans_store", "scan_copies"}  # the scans tables: Distributed in front of <name>_local


class Recorder:
    """A client for the migration's Python steps: answers what the schema looks like, records the SQL."""

    def __init__(self, sorting_keys: dict[str, str], months=(202610, 202611)):
        self.sorting_keys, self.months, self.sql = dict(sorting_keys), months, []

    def query(self, sql, parameters=None, settings=None):
        class Result:
            result_rows = []
        if "system.tables" in sql:
            key = self.sorting_keys.get(parameters["t"])
            Result.result_rows = [(key,)] if key is not None else []
        elif "SELECT DISTINCT toYYYYMM" in sql:
            Result.result_rows = [(m,) for m in self.months]
            self.sql.append(sql)
        return Result()

    def command(self, sql, parameters=None, settings=None):
        self.sql.append(sql)
        if sql.startswith("EXCHANGE TABLES"):
            a, b = re.findall(r"\w+\.(\w+)", sql)[:2]
            self.sorting_keys[a], self.sorting_keys[b] = self.sorting_keys.get(b), self.sorting_keys.get(a)
        elif sql.startswith("RENAME TABLE"):
            a, b = re.findall(r"\w+\.(\w+)", sql)[:2]
            self.sorting_keys[b] = self.sorting_keys.pop(a)
        return 7  # every month's scans are all there


def python_steps_sql(layout: Layout) -> list[str]:
    """The SQL migration 4's Python steps issue on a store still in today's design."""
    store = layout.local("scans_store")
    client = Recorder({store: "h3_r8, technology, observed_at, scan_id", f"{store}_next": "scan_id"})
    for step in MIGRATIONS[3].steps(layout):
        if not isinstance(step, str):
            step(client, "quacknet", layout)
    return client.sql


def cluster_sql() -> list[str]:
    return [s for s in plan(CLUSTER) if isinstance(s, str)] + python_steps_sql(CLUSTER)


DDL = re.compile(r"^(CREATE|EXCHANGE|RENAME|DROP)\b")


def test_every_ddl_statement_runs_on_the_whole_cluster_and_none_does_on_one_server():
    ddl = [s for s in cluster_sql() if DDL.match(s)]
    assert len(ddl) >= 15
    assert [s for s in ddl if " ON CLUSTER quacknet" not in s] == []
    single = [s for s in plan(SINGLE_SERVER) if isinstance(s, str)] + python_steps_sql(SINGLE_SERVER)
    assert [s for s in single if "ON CLUSTER" in s or "Replicated" in s or "Distributed" in s] == []


def engines(sql: list[str]) -> dict[str, str]:
    found = {}
    for statement in sql:
        created = re.match(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+)", statement)
        if created:
            found[created.group(1)] = re.search(r"ENGINE = (\w+\(.*?\))\s*(?:ORDER|PARTITION|$)", statement, re.S).group(1)
    return found


def test_tables_are_replicated_per_shard_or_on_every_node_and_the_scans_tables_are_distributed():
    found = engines([s for s in plan(CLUSTER) if isinstance(s, str)])
    for table, engine in found.items():
        base = table.removesuffix("_next").removesuffix("_local")
        if base in SHARDED and not table.endswith(("_local", "_next")):
            assert engine == f"Distributed(quacknet, {{db}}, {table}_local, {SHARDING_KEY})", table
        elif base in SHARDED:  # a shard's rows, replicated among the shard's replicas
            assert engine.startswith(f"ReplicatedReplacingMergeTree('{KEEPER_PATH_SHARDED}', '{{replica}}'"), table
        else:  # small tables every node holds whole
            assert engine.startswith("Replicated") and f"'{KEEPER_PATH_EVERY_NODE}', '{{replica}}'" in engine, table
    assert {"scans_store", "scans_store_local", "scans_store_local_next", "scan_copies", "scan_copies_local",
            "load_ledger", "audit_findings", "schema_migrations"} <= set(found)
    assert "{shard}" in KEEPER_PATH_SHARDED and "{shard}" not in KEEPER_PATH_EVERY_NODE
    assert all("{uuid}" in p for p in (KEEPER_PATH_SHARDED, KEEPER_PATH_EVERY_NODE))  # survives EXCHANGE/RENAME


def test_views_read_through_the_distributed_tables_and_the_lineage_view_fires_on_each_shard():
    sql = [s for s in plan(CLUSTER) if isinstance(s, str)]
    first, last = [s for s in sql if s.startswith(("CREATE VIEW IF NOT EXISTS {db}.scans ", "CREATE OR REPLACE VIEW {db}.scans "))]
    assert first.endswith("FROM {db}.scans_store FINAL")  # migration 1's; each shard applies FINAL to its own rows
    assert last.startswith("CREATE OR REPLACE VIEW {db}.scans ON CLUSTER quacknet ")  # migration 4's, the one in place
    assert "FROM {db}.scans_store FINAL SETTINGS optimize_move_to_prewhere_if_final = 1" in last
    [mv] = [s for s in sql if "MATERIALIZED VIEW" in s]
    assert "TO {db}.scan_copies_local" in mv and mv.rstrip().endswith("FROM {db}.scans_store_local")


def test_migration_4_swaps_and_copies_the_shards_local_tables_across_the_cluster():
    steps = python_steps_sql(CLUSTER)
    assert steps[0] == "EXCHANGE TABLES quacknet.scans_store_local AND quacknet.scans_store_local_next ON CLUSTER quacknet"
    assert steps[1] == "RENAME TABLE quacknet.scans_store_local_next TO quacknet.scans_store_local_v3 ON CLUSTER quacknet"
    inserts = [s for s in steps if s.startswith("INSERT")]
    assert len(inserts) == 2 and all(s.startswith("INSERT INTO quacknet.scans_store (") for s in inserts)  # the Distributed
    assert all("FROM cluster('quacknet', quacknet, scans_store_local_v3)" in s for s in inserts)
    assert steps[-1] == "DROP TABLE IF EXISTS quacknet.scans_store_local_v3 ON CLUSTER quacknet SYNC"


def identifiers(expression: str) -> set[str]:
    """Names an expression reads (function names are followed by a parenthesis)."""
    return {m.group(1) for m in re.finditer(r"\b([A-Za-z_]\w*)\b(?!\s*\()", expression)}


def test_the_sharding_key_reads_scan_id_and_nothing_else_so_every_copy_of_a_scan_lands_on_one_shard():
    """Copies of a scan may differ in any field but scan_id (the issue's table: place, technology,
    time, even the device): a key reading any other column would split them across shards, where
    FINAL could never collapse them. scan_id is a phone's random UUID: hashed, it spreads evenly."""
    assert identifiers(SHARDING_KEY) == {"scan_id"}
    assert re.fullmatch(r"(cityHash64|sipHash64|xxHash64)\(scan_id\)", SHARDING_KEY)  # a hash, not the raw id
    assert identifiers("cityHash64(device_id, scan_id)") == {"device_id", "scan_id"}  # the check can tell


def test_the_cluster_setting_is_an_identifier_and_unset_means_one_server(monkeypatch):
    monkeypatch.delenv("QUACKNET_CLICKHOUSE_CLUSTER", raising=False)
    assert Settings().clickhouse_cluster is None
    monkeypatch.setenv("QUACKNET_CLICKHOUSE_CLUSTER", "")  # compose's unset .env variable
    assert Settings().clickhouse_cluster is None
    monkeypatch.setenv("QUACKNET_CLICKHOUSE_CLUSTER", "quacknet")
    assert Settings().clickhouse_cluster == "quacknet" and Settings().to_env()["QUACKNET_CLICKHOUSE_CLUSTER"] == "quacknet"
    monkeypatch.setenv("QUACKNET_CLICKHOUSE_CLUSTER", "quacknet; DROP DATABASE x")
    with pytest.raises(ValueError, match="clickhouse_cluster"):
        Settings()


def test_the_compose_clusters_config_is_two_shards_of_two_replicas_that_the_macros_name():
    root = ET.parse(CONFIG / "cluster.xml").getroot()
    [cluster] = list(root.find("remote_servers"))
    assert cluster.tag == CLUSTER.cluster and cluster.find("secret").get("from_env")
    shards = cluster.findall("shard")
    assert len(shards) == 2
    seen = set()
    for number, shard in enumerate(shards, 1):
        assert shard.findtext("internal_replication") == "true"  # Distributed writes one replica, Keeper the rest
        replicas = [r.findtext("host") for r in shard.findall("replica")]
        assert len(replicas) == 2
        for host in replicas:
            macros = ET.parse(CONFIG / "macros" / f"{host.removeprefix('clickhouse-')}.xml").getroot().find("macros")
            assert (macros.findtext("shard"), macros.findtext("replica"), macros.findtext("cluster")) == (
                str(number), host, CLUSTER.cluster)
            seen.add(host)
    assert len(seen) == 4  # {replica} is unique in the cluster (the every-node tables need that)
    keeper = ET.parse(CONFIG / "keeper.xml").getroot().find("keeper_server")
    node = root.find("zookeeper/node")
    assert (node.findtext("host"), node.findtext("port")) == (
        keeper.findtext("raft_configuration/server/hostname"), keeper.findtext("tcp_port"))
