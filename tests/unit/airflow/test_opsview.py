import datetime as dt

from quacknet.airflow.opsview import render

RUN = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def _finding(ok: bool, message: str, check: str = "retention") -> dict:
    return {"run_at": RUN, "check": check, "subject": "", "topic": "scans", "partition": -1, "ok": ok, "value": 1.0,
            "limit": 2.0, "message": message}


def test_the_page_leads_with_the_verdict_and_marks_violations():
    page = render([_finding(False, "scans: retention.ms is 1, policy says 2"), _finding(True, "fine")], [])
    assert "1 violation(s) in the audit of 2026-11-26 12:00:00 UTC" in page
    assert "<tr class='fail'><td>FAIL</td><td>retention</td>" in page and "<tr class='ok'><td>OK</td>" in page
    assert "no replay has loaded anything yet" in page


def test_everything_stored_is_escaped():
    page = render([_finding(False, "<script>alert(1)</script>")],
                  [{"source": "replay:<b>", "topic": "t", "started": RUN, "finished": RUN, "partitions": [0],
                    "messages": 5, "first": 0, "last": 4}])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "replay:&lt;b&gt;" in page


def test_an_empty_warehouse_says_so():
    page = render([], [])
    assert "no audit has run yet" in page and "no findings stored yet" in page
