"""The operators' page in the Airflow UI: the latest retention audit and the recent replays.

Read-only, straight from ClickHouse (``audit_findings`` and ``load_ledger``), so it shows what the
DAGs actually stored rather than what Airflow remembers. ``plugins/quacknet_plugin.py`` mounts
``create_app`` in the Airflow API server behind Airflow's own login.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

LATEST_AUDIT = """
SELECT run_at, check, subject, topic, partition, ok, value, limit, message FROM {db:Identifier}.audit_findings
WHERE run_at = (SELECT max(run_at) FROM {db:Identifier}.audit_findings)
ORDER BY ok, check, topic, partition
"""

RECENT_REPLAYS = """
SELECT source, topic, min(loaded_at) AS started, max(loaded_at) AS finished, groupUniqArray(partition) AS partitions,
       sum(last_offset - first_offset + 1) AS messages, min(first_offset) AS first, max(last_offset) AS last
FROM {db:Identifier}.load_ledger WHERE source LIKE 'replay%'
GROUP BY source, topic ORDER BY finished DESC LIMIT {limit:UInt32}
"""


def latest_audit(client, database: str) -> list[dict[str, Any]]:
    result = client.query(LATEST_AUDIT, parameters={"db": database})
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def recent_replays(client, database: str, limit: int = 20) -> list[dict[str, Any]]:
    result = client.query(RECENT_REPLAYS, parameters={"db": database, "limit": limit})
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str, row_class: Callable | None = None) -> str:
    if not rows:
        return f"<p class='empty'>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f"<tr class='{row_class(r) if row_class else ''}'>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in columns) + "</tr>"
        for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(audit: list[dict[str, Any]], replays: list[dict[str, Any]]) -> str:
    """The page: violations first, every value escaped (messages carry topic names and errors)."""
    failed = sum(1 for f in audit if not f["ok"])
    verdict = ("no audit has run yet" if not audit else
               f"{failed} violation(s) in the audit of {audit[0]['run_at']:%Y-%m-%d %H:%M:%S} UTC" if failed else
               f"all {len(audit)} checks passed in the audit of {audit[0]['run_at']:%Y-%m-%d %H:%M:%S} UTC")
    audit_rows = [{**f, "result": "OK" if f["ok"] else "FAIL"} for f in audit]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>QuackNet operations</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; font-size: .9rem; }}
tr.fail td {{ background: #fde2e2; }}
.verdict {{ font-weight: 600; }}
</style></head>
<body>
<h1>QuackNet operations</h1>
<h2>Retention audit</h2>
<p class="verdict" id="verdict">{html.escape(verdict)}</p>
{_table(audit_rows, ["result", "check", "topic", "partition", "subject", "message"], "no findings stored yet",
        lambda r: "fail" if not r["ok"] else "ok")}
<h2>Recent replays</h2>
{_table(replays, ["source", "topic", "started", "finished", "partitions", "messages", "first", "last"],
        "no replay has loaded anything yet")}
<p><a href="api/audit">audit as JSON</a> · <a href="api/replays">replays as JSON</a></p>
</body></html>"""


def create_app(client_factory: Callable[[], tuple[Any, str]], dependencies: Sequence = ()):
    """A FastAPI app: ``/`` (the page), ``/api/audit`` and ``/api/replays`` (JSON).
    ``client_factory`` returns (a ClickHouse client, the database) per request."""
    from fastapi import Depends, FastAPI
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="QuackNet operations", dependencies=[Depends(d) for d in dependencies])

    def with_client(read: Callable):
        client, database = client_factory()
        try:
            return read(client, database)
        finally:
            client.close()

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return with_client(lambda c, db: render(latest_audit(c, db), recent_replays(c, db)))

    @app.get("/api/audit")
    def audit() -> list[dict]:
        return with_client(latest_audit)

    @app.get("/api/replays")
    def replays() -> list[dict]:
        return with_client(recent_replays)

    return app
