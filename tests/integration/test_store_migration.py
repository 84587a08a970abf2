"""Migration 4 on the real engine: today's store, with the conflicting copies its design kept apart,
becomes the scan_id-keyed store with one row per scan holding the copy received last; nothing else
is lost, and a migration interrupted at any step finishes when run again."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from devtools.samples import NATIVE_COLUMNS, native_row, scan_payload
from quacknet.scan import CLICKHOUSE_TYPES, Scan, validate_submission
from quacknet.warehouse import queries
from quacknet.warehouse.migrations import LATEST, MIGRATIONS, SINGLE_SERVER, migrate, schema_migrations_ddl

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
TOPIC = "netintel.scan.events"
# The table: what the second copy of a scan differs in.
CASES = {
    "lat/lon": {"lat": 50.11, "lon": 8.68},
    "technology": {"technology": "NR-SA"},
    "observed_at": {"observed_at": (NOW - dt.timedelta(minutes=3)).isoformat()},
    "observed_at in another month": {"observed_at": dt.datetime(2026, 10, 31, 23, 30, tzinfo=dt.UTC).isoformat()},
    "rsrp": {"rsrp": -77.0},
    "device_id": {"device_id": "another-phone"},
    "nothing": {},
}
COLUMNS = ", ".join([*CLICKHOUSE_TYPES, "kafka_topic", "kafka_partition", "kafka_offset", "h3_r8"])


def todays_store(ch, database: str) -> None:
    """The schema as today's main leaves it: migrations 1 to 3 (migration 1 is today's design)."""
    ch.command(schema_migrations_ddl(SINGLE_SERVER).replace("{db}", database))
    for migration in MIGRATIONS[:3]:
        for statement in migration.statements():
            ch.command(statement.replace("{db}", database))
        ch.insert(f"{database}.schema_migrations", [(migration.version, migration.name)], column_names=["version", "name"])


def scan(payload: dict, received: dt.datetime) -> Scan:
    return Scan.received(validate_submission(payload, received), received)


def store_rows(ch, database: str, scans: list[tuple[Scan, int, int]]) -> None:
    """Each (scan, partition, offset) in its own insert: its own part, as separate loader batches write."""
    for s, partition, offset in scans:
        ch.insert(f"{database}.scans_store", [native_row(s, TOPIC, partition, offset)], column_names=NATIVE_COLUMNS)


def view(ch, database: str) -> dict[str, dict]:
    rows = ch.query(f"SELECT {COLUMNS} FROM {database}.scans").named_results()
    return {str(r["scan_id"]): r for r in rows}


def conflicting_copies(rng: random.Random) -> tuple[list[tuple[Scan, int, int]], dict[str, Scan]]:
    """Per case, a first copy and a second received 4 s later; plus a spool re-send of an older
    copy that arrives after the newer one, and two copies received in the same millisecond."""
    writes, winners = [], {}
    for i, (name, change) in enumerate(CASES.items()):
        first = scan_payload("phone", rng=rng, now=NOW, observed_at=(NOW - dt.timedelta(minutes=10)).isoformat(), rsrp=-100.0)
        older, newer = scan(first, NOW), scan({**first, **change}, NOW + dt.timedelta(seconds=4))
        writes += [(older, 0, i), (newer, 1, i)]
        winners[name] = newer
    late = scan_payload("phone", rng=rng, now=NOW, lat=48.1, lon=11.6)  # the newer copy is written first
    newer, older = scan({**late, "lat": 48.2}, NOW + dt.timedelta(seconds=30)), scan(late, NOW)
    writes += [(newer, 2, 0), (older, 2, 1)]
    winners["an older copy written last"] = newer
    tie = scan_payload("phone", rng=rng, now=NOW)
    low, high = scan(tie, NOW), scan({**tie, "technology": "GSM", "rsrp": None, "rsrq": None, "sinr": None}, NOW)
    writes += [(high, 5, 3), (low, 4, 9)]  # same millisecond: the higher Kafka partition wins
    winners["received in the same millisecond"] = high
    return writes, winners


def expected_row(s: Scan) -> dict:
    values = json.loads(s.model_dump_json())
    return {k: values.get(k) for k in ("device_id", "lat", "lon", "technology", "rsrp")} | {
        "observed_at": s.observed_at.replace(tzinfo=None), "received_at": s.received_at.replace(tzinfo=None)}


def test_todays_store_with_conflicting_copies_migrates_to_one_row_per_scan_holding_the_later_copy(ch, database):
    rng = random.Random(14)
    todays_store(ch, database)
    writes, winners = conflicting_copies(rng)
    store_rows(ch, database, writes)
    days = [NOW - dt.timedelta(days=i % 70) for i in range(600)]  # three months of partitions
    plain = [scan(scan_payload(f"p{i % 9}", rng=rng, now=day), day) for i, day in enumerate(days)]
    ch.insert(f"{database}.scans_store", [native_row(s, TOPIC, 3, 100 + i) for i, s in enumerate(plain)],
              column_names=NATIVE_COLUMNS)
    ch.insert(f"{database}.load_ledger", [[TOPIC, 0, 0, 99, "loader"]],
              column_names=["topic", "partition", "first_offset", "last_offset", "source"])
    ch.insert(f"{database}.audit_findings", [[NOW, "lag_horizon", "g", TOPIC, 0, True, 1.0, 2.0, "fine"]],
              column_names=["run_at", "check", "subject", "topic", "partition", "ok", "value", "limit", "message"])
    before = view(ch, database)
    scans = len(CASES) + 2 + len(plain)
    assert ch.command(f"SELECT count() FROM {database}.scans") > scans  # today's design: copies kept apart

    assert migrate(ch, database) == [4]

    after = view(ch, database)
    assert ch.command(f"SELECT count() FROM {database}.scans") == len(after) == scans
    for name, winner in winners.items():
        got = after[str(winner.scan_id)]
        assert {k: got[k] for k in expected_row(winner)} == expected_row(winner), name
    lost, won = writes[0][0], winners["lat/lon"]  # a condition only the superseded copy meets finds nothing
    where = "scan_id = {id:UUID} AND lat = {lat:Float64} AND lon = {lon:Float64}"
    assert [ch.command(f"SELECT count() FROM {database}.scans WHERE {where}",
                       parameters={"id": str(s.scan_id), "lat": s.lat, "lon": s.lon}) for s in (lost, won)] == [0, 1]
    for s in plain:  # everything else as it was, every column
        assert after[str(s.scan_id)] == before[str(s.scan_id)]
    assert ch.command(f"SELECT count() FROM {database}.load_ledger") == 1
    assert ch.command(f"SELECT count() FROM {database}.audit_findings") == 1
    tables = {r[0] for r in ch.query(f"SELECT name FROM system.tables WHERE database = '{database}'").result_rows}
    assert not {"scans_store_v3", "scans_store_next"} & tables
    assert ch.command(f"SELECT sorting_key FROM system.tables WHERE database = '{database}' AND name = 'scans_store'") == "scan_id"
    # the copies the old store still held stay visible, with whether their contents differed
    lineage = queries.lineage(ch, database, winners["lat/lon"].scan_id)
    assert len(lineage.copies) == 2 and lineage.superseded_differing == 1 and [c.kept for c in lineage.copies] == [False, True]
    assert queries.lineage(ch, database, plain[0].scan_id).superseded_differing == 0
    assert migrate(ch, database) == []
    store_rows(ch, database, writes)  # a replay of every copy after the migration (the losers written last)
    assert view(ch, database) == after


@pytest.mark.parametrize("stop_after", ["scans_store_next", "_swap_in_the_new_store", "_copy_the_old_store"])
def test_a_migration_interrupted_at_any_step_finishes_when_run_again_and_keeps_what_was_written_meanwhile(
        ch, database, stop_after):
    rng = random.Random(7)
    todays_store(ch, database)
    writes, winners = conflicting_copies(rng)
    store_rows(ch, database, writes)
    for step in MIGRATIONS[3].steps():  # a crash after `stop_after`
        if isinstance(step, str):
            ch.command(step.replace("{db}", database))
        else:
            step(ch, database, SINGLE_SERVER)
        if stop_after in (step if isinstance(step, str) else step.__name__):
            break
    meanwhile = scan(scan_payload("loader", rng=rng, now=NOW), NOW)  # a loader still writing
    store_rows(ch, database, [(meanwhile, 0, 1000)])

    assert migrate(ch, database) == [4]

    after = view(ch, database)
    assert len(after) == len(winners) + 1 and str(meanwhile.scan_id) in after
    for name, winner in winners.items():
        assert after[str(winner.scan_id)]["received_at"] == winner.received_at.replace(tzinfo=None), name
    assert ch.command(f"SELECT max(version) FROM {database}.schema_migrations FINAL") == LATEST
    assert ch.command(f"SELECT count() FROM system.tables WHERE database = '{database}' AND name LIKE 'scans_store_%'") == 0
