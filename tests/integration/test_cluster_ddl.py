"""The cluster DDL (QUACKNET_CLICKHOUSE_CLUSTER) as the real engine's parser reads it. No cluster
runs here (chDB has no Keeper): every statement the migrations would send ON CLUSTER, and the SQL
their Python steps issue, must parse (``formatQuery``) and keep what the design needs; the sharding
key is evaluated by the engine over copies of scans."""

from __future__ import annotations

import clickhouse_connect.driver.exceptions
import pytest

from quacknet.warehouse.migrations import SHARDING_KEY, SINGLE_SERVER, Layout, plan
from tests.unit.warehouse.test_cluster import python_steps_sql

CLUSTER = Layout("quacknet")


def formatted(ch, sql: str) -> str:
    return ch.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": sql.replace("{db}", "quacknet")}).result_rows[0][0]


def every_statement(layout: Layout) -> list[str]:
    return [s for s in plan(layout) if isinstance(s, str)] + python_steps_sql(layout)


def test_every_cluster_statement_parses_with_the_engine_and_keeps_cluster_replicas_and_sharding(ch):
    statements = every_statement(CLUSTER)
    out = [formatted(ch, s) for s in statements]
    assert len(out) == len(statements) >= 20
    ddl = [f for f in out if f.startswith(("CREATE", "EXCHANGE", "RENAME", "DROP"))]
    assert all(" ON CLUSTER quacknet" in f for f in ddl)
    engines = " ".join(f for f in out if "ENGINE" in f)
    # a shard's scans (migration 1's store and 4's), the copies' lineage
    assert engines.count("ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}'") == 3
    assert engines.count(f"Distributed(quacknet, quacknet, scans_store_local, {SHARDING_KEY})") == 1
    assert engines.count(f"Distributed(quacknet, quacknet, scan_copies_local, {SHARDING_KEY})") == 1
    assert engines.count("'/clickhouse/tables/{uuid}/all', '{replica}'") == 3  # versions, findings, ledger
    assert "ENGINE = MergeTree" not in engines and "ENGINE = ReplacingMergeTree" not in engines


def test_the_single_server_statements_parse_too(ch):
    assert all(formatted(ch, s) for s in every_statement(SINGLE_SERVER))


def test_the_parser_refuses_a_broken_statement(ch):
    """The check above can fail: a statement the engine cannot read is an error, not a pass."""
    broken = every_statement(CLUSTER)[2].replace("ON CLUSTER quacknet", "ON CLUSTER")
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match="Syntax error"):
        formatted(ch, broken)


def test_the_engine_reads_the_sharding_key_as_a_function_of_scan_id_alone(ch):
    ast = ch.command(f"EXPLAIN AST SELECT {SHARDING_KEY}")
    names = {line.split()[1] for line in ast.splitlines() if line.strip().startswith("Identifier")}
    assert names == {"scan_id"}


def test_copies_of_a_scan_meet_on_one_shard_and_scans_spread_evenly_over_two(ch):
    """Per scan, 20 copies differing in every other field (device, place, technology, time) land on
    one shard (Distributed picks key % 2 with two shards of weight 1); 20,000 scans split evenly."""
    shards_per_scan = ch.query(f"""
        SELECT uniqExact({SHARDING_KEY} % 2) FROM (
            SELECT reinterpretAsUUID(concat(reinterpretAsString(cityHash64(number % 1000)),
                                            reinterpretAsString(cityHash64(number % 1000, 1)))) AS scan_id,
                   toString(rand()) AS device_id, randCanonical() * 90 AS lat,
                   ['LTE', 'WIFI', 'NR-SA'][1 + rand() % 3] AS technology, now64(3) - rand() % 5000000 AS observed_at
            FROM numbers(20000))
        GROUP BY scan_id""").result_rows
    assert len(shards_per_scan) == 1000 and {n for (n,) in shards_per_scan} == {1}
    first = ch.command(f"SELECT countIf({SHARDING_KEY} % 2 = 0) FROM (SELECT generateUUIDv4(number) AS scan_id FROM numbers(20000))")
    assert 9_500 < first < 10_500
