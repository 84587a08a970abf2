"""clickhouse-connect against the configured ClickHouse: the local chDB gateway, or a real
clickhouse-server when QUACKNET_CLICKHOUSE_URL points at one. Every feature QuackNet uses."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import uuid

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from quacknet.warehouse import client as ch_client

UTC = dt.UTC
ALL_TYPES = """
    id UInt64, s String, lc LowCardinality(String), u8 UInt8, u16 UInt16, u32 UInt32, i32 Int32,
    f32 Float32, f64 Float64, ts DateTime64(3, 'UTC'), n Nullable(Float64), arr Array(String), u UUID
"""
COLUMNS = ["id", "s", "lc", "u8", "u16", "u32", "i32", "f32", "f64", "ts", "n", "arr", "u"]


def _row(i: int):
    return (
        i, f"scan-{i}\t'quoted'\n ünïcode", ["LTE", "NR-SA", "WIFI"][i % 3], i % 256, i % 65536, i * 7, -i,
        float(i) / 4, i / 3, dt.datetime(2026, 11, 26, 12, 0, 0, (i % 1000) * 1000, tzinfo=UTC),
        None if i % 2 else -97.5, [f"b{j}" for j in range(i % 4)], uuid.UUID(int=i * 2654435761),
    )


def test_client_start_and_server_identity(ch):
    assert ch.command("SELECT 1") == 1
    assert int(ch.server_version.split(".")[0]) >= 24
    assert ch.ping()


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_every_project_column_type_round_trips(stack, database, compress):
    client = ch_client(stack, compress=compress, database=database)
    client.command(f"CREATE TABLE t ({ALL_TYPES}) ENGINE = MergeTree ORDER BY id")
    rows = [_row(i) for i in range(3000)]
    client.insert("t", rows, column_names=COLUMNS)
    back = client.query(f"SELECT {', '.join(COLUMNS)} FROM t ORDER BY id").result_rows
    assert len(back) == 3000
    for want, got in zip(rows, back):
        got = list(got)
        got[9] = got[9].replace(tzinfo=UTC) if got[9].tzinfo is None else got[9]
        assert tuple(got[:7]) == want[:7]
        assert got[7] == pytest.approx(want[7]) and got[8] == want[8]
        assert (got[9], got[10], list(got[11]), got[12]) == (want[9], want[10], want[11], want[12])
    client.close()


def test_replacing_merge_tree_final_gives_exact_answers(ch, database):
    ch.command(f"CREATE TABLE {database}.r (k UInt64, v String, ver UInt64) ENGINE = ReplacingMergeTree(ver) ORDER BY k")
    for part in range(3):  # three inserts = three parts holding the same keys
        ch.insert(f"{database}.r", [(k, f"v{part}", part) for k in range(100)], column_names=["k", "v", "ver"])
    assert ch.command(f"SELECT count() FROM {database}.r") == 300
    assert ch.query(f"SELECT count(), min(v), max(v) FROM {database}.r FINAL").result_rows == [(100, "v2", "v2")]


def test_server_side_parameters(ch, database):
    ch.command(f"CREATE TABLE {database}.p (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
    ch.insert(f"{database}.p", [(i, f"s{i}") for i in range(10)] + [(99, "tab\there 'q' \\ ü")], column_names=["id", "s"])
    got = ch.query(f"SELECT id FROM {database}.p WHERE s = {{s:String}}", parameters={"s": "tab\there 'q' \\ ü"})
    assert got.result_rows == [(99,)]
    got = ch.query(f"SELECT count() FROM {database}.p WHERE id IN {{ids:Array(UInt64)}} AND id > {{lo:UInt64}}",
                   parameters={"ids": [1, 2, 3, 4], "lo": 2})
    assert got.result_rows == [(2,)]


def test_large_parameter_arrays_in_commands_and_queries(ch, database):
    ids = [uuid.UUID(int=i) for i in range(1, 3001)]  # ~110 KB of URL parameters
    ch.command(f"CREATE TABLE {database}.u (id UUID) ENGINE = MergeTree ORDER BY id")
    ch.insert(f"{database}.u", [(i,) for i in ids[:2000]], column_names=["id"])
    ch.command(f"DELETE FROM {database}.u WHERE id IN {{ids:Array(UUID)}}", parameters={"ids": ids[:1500]})
    assert ch.query(f"SELECT count() FROM {database}.u WHERE id IN {{ids:Array(UUID)}}", parameters={"ids": ids}).result_rows == [(500,)]


def test_per_call_settings_apply_to_that_call_only(ch, database):
    default = ch.command("SELECT getSetting('max_threads')")
    assert ch.command("SELECT getSetting('max_threads')", settings={"max_threads": 1}) == 1
    assert ch.query("SELECT getSetting('max_result_rows')", settings={"max_result_rows": 77}).result_rows == [(77,)]
    assert ch.command("SELECT getSetting('max_threads')") == default
    assert ch.command("SELECT getSetting('max_result_rows')") == 0


def test_insert_deduplication_token_is_per_insert_and_does_not_leak(ch, database):
    table = f"{database}.d"
    ch.command(f"CREATE TABLE {table} (k UInt64) ENGINE = MergeTree ORDER BY k SETTINGS non_replicated_deduplication_window = 100")
    ch.insert(table, [(1,), (2,)], column_names=["k"], settings={"insert_deduplication_token": "batch-1"})
    ch.insert(table, [(1,), (2,)], column_names=["k"], settings={"insert_deduplication_token": "batch-1"})  # a retry
    assert ch.command(f"SELECT count() FROM {table}") == 2
    ch.insert(table, [(3,)], column_names=["k"])  # no token: must not inherit batch-1
    ch.insert(table, [(4,), (5,)], column_names=["k"], settings={"insert_deduplication_token": "batch-2"})
    assert ch.query(f"SELECT groupArray(k) FROM (SELECT k FROM {table} ORDER BY k)").result_rows == [([1, 2, 3, 4, 5],)]


def test_sessions_keep_their_own_state(stack, database):
    a = ch_client(stack, session_id=f"a-{uuid.uuid4()}")
    b = ch_client(stack, session_id=f"b-{uuid.uuid4()}")
    a.command("CREATE TEMPORARY TABLE scratch (x UInt8)")
    a.command("INSERT INTO scratch VALUES (1), (2)")
    a.command("SET max_threads = 1")
    assert a.command("SELECT count() FROM scratch") == 2
    assert a.command("SELECT getSetting('max_threads')") == 1
    with pytest.raises(DatabaseError) as err:
        b.command("SELECT count() FROM scratch")
    assert "60" in str(err.value) or "UNKNOWN_TABLE" in str(err.value)
    assert b.command("SELECT getSetting('max_threads')") != 1
    a.close()
    b.close()


@pytest.mark.parametrize("sql,code", [
    ("SELECT * FROM no_such_db.no_such_table", 81),
    ("SELEKT 1", 62),
    ("SELECT throwIf(1, 'deliberate')", 395),
])
def test_errors_come_back_with_clickhouse_codes(ch, sql, code):
    with pytest.raises(DatabaseError) as err:
        ch.query(sql)
    assert f"code: {code}" in str(err.value).lower()


def test_large_results_stream(ch):
    with ch.query_row_block_stream("SELECT number FROM numbers(1000000)") as stream:
        total = count = 0
        for block in stream:
            count += len(block)
            total += sum(r[0] for r in block)
    assert (count, total) == (1_000_000, 999_999 * 1_000_000 // 2)


def test_raw_formats(ch, database):
    ch.command(f"CREATE TABLE {database}.raw (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    ch.raw_insert(f"{database}.raw", ["a", "b"], "1,one\n2,two\n", fmt="CSV")
    assert ch.raw_query(f"SELECT a, b FROM {database}.raw ORDER BY a FORMAT JSONEachRow") == b'{"a":1,"b":"one"}\n{"a":2,"b":"two"}\n'
    assert ch.command(f"SELECT sum(a) FROM {database}.raw") == 3


def _writer(url: str, table: str, worker: int, batches: int, rows: int) -> int:
    import threading

    import clickhouse_connect

    def thread(t: int):
        client = clickhouse_connect.get_client(dsn=url, autogenerate_session_id=False)
        for b in range(batches):
            base = ((worker * 4 + t) * batches + b) * rows
            client.insert(table, [(base + i, worker) for i in range(rows)], column_names=["k", "w"])
            client.query(f"SELECT count() FROM {table}")  # reads interleaved with writes
        client.close()

    threads = [threading.Thread(target=thread, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return worker


def test_four_processes_of_four_threads_insert_and_read_concurrently(stack, ch, database):
    table = f"{database}.conc"
    ch.command(f"CREATE TABLE {table} (k UInt64, w UInt8) ENGINE = MergeTree ORDER BY k")
    ctx = multiprocessing.get_context("spawn")
    url = stack.clickhouse_url.replace("://", f"://{stack.clickhouse_user}:{stack.clickhouse_password.get_secret_value()}@")
    with ctx.Pool(4) as pool:
        done = pool.starmap(_writer, [(url, table, w, 5, 2000) for w in range(4)])
    assert sorted(done) == [0, 1, 2, 3]
    assert ch.query(f"SELECT count(), uniqExact(k), max(k) FROM {table}").result_rows == [(160_000, 160_000, 159_999)]
