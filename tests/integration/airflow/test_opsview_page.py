"""The QuackNet operations page reads what the audit and the replays stored in the real ClickHouse engine."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from quacknet.airflow import opsview
from quacknet.ops import audit
from quacknet.pipeline import LEDGER_COLUMNS
from quacknet.warehouse import client as ch_client
from quacknet.warehouse.migrations import migrate


def test_the_page_shows_the_latest_audit_and_the_recent_replays(stack, ch, database):
    migrate(ch, database)
    old, new = dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC), dt.datetime(2026, 11, 26, 11, tzinfo=dt.UTC)
    audit.store(ch, database, old, [audit.Finding("retention", "scans", -1, False, 1, 2, "an old violation")])
    audit.store(ch, database, new, [audit.Finding("retention", "scans", -1, True, 2, 2, "scans: retention.ms = 2"),
                                    audit.Finding("completeness", "scans", 3, False, 7, 0, "scans[3]: 7 of offsets missing")])
    ch.insert(f"{database}.load_ledger", [["scans", 0, 0, 99, "replay:manual__1"], ["scans", 1, 10, 59, "replay:manual__1"],
                                         ["scans", 0, 0, 999, "loader"]], column_names=LEDGER_COLUMNS)

    app = opsview.create_app(lambda: (ch_client(stack), database))
    client = TestClient(app)
    findings = client.get("/api/audit").json()
    assert [(f["check"], f["ok"]) for f in findings] == [("completeness", False), ("retention", True)]
    [replay] = client.get("/api/replays").json()
    assert replay["source"] == "replay:manual__1" and replay["messages"] == 150 and sorted(replay["partitions"]) == [0, 1]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "1 violation(s) in the audit of 2026-11-26 11:00:00 UTC" in page.text
    assert "scans[3]: 7 of offsets missing" in page.text and "an old violation" not in page.text
