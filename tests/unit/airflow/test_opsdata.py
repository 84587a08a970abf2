"""How the operations page derives its figures: the time axis, lag over time from Kafka's ends and
the load ledger, ingest rates, and replays joined from Airflow's runs and the ledger."""

import datetime as dt

from quacknet.airflow import opsdata
from quacknet.airflow.opsdata import AirflowRun, PartitionLag

NOW = dt.datetime(2026, 11, 30, 21, 3, 30, tzinfo=dt.UTC)


def test_the_window_is_aligned_to_its_step_and_ends_now():
    win = opsdata.window(1, NOW)
    points = win.boundaries_ms()
    assert win.step_s == 60 and points[0] == int(dt.datetime(2026, 11, 30, 20, 3, tzinfo=dt.UTC).timestamp() * 1000)
    assert all(b - a == 60_000 for a, b in zip(points[:-1], points[1:-1]))
    assert points[-1] == win.now_ms and points[-2] == int(dt.datetime(2026, 11, 30, 21, 3, tzinfo=dt.UTC).timestamp() * 1000)
    assert opsdata.window(5, NOW).hours == opsdata.DEFAULT_HOURS  # only the offered windows


def test_lag_over_time_is_the_logs_end_then_minus_what_the_loader_had_stored_by_then():
    win = opsdata.window(1, NOW)
    n = len(win.boundaries_ms())  # 61 step boundaries and now
    ends = {0: [100 + 10 * k for k in range(n)], 1: [50] * n}
    # partition 0: stored up to 100 before the window; bucket 0 reaches 115, bucket 2 reaches 140
    positions = {0: {-1: 100, 0: 115, 2: 140}}
    now = [PartitionLag(0, 700, 0, 710), PartitionLag(1, 50, 20, 50)]
    series = opsdata.lag_series(win, ends, positions, now)
    assert series[0][:4] == [0, 0, 5, 0]  # never negative: the loader stores before Kafka's clock ticks on
    assert series[0][10] == 200 - 140 and series[0][-1] == 10  # the last point is the committed lag now
    # partition 1: nothing in the ledger: lag counted from the earliest retained offset (20)
    assert series[1][0] == 30 and series[1][-1] == 0


def test_produced_rates_count_whole_steps_only():
    win = opsdata.window(1, NOW)
    n = len(win.boundaries_ms())
    ends = {0: [60 * k for k in range(n)], 1: [0] * (n - 1) + [999]}
    rates = opsdata.produced_rates(win, ends)
    assert len(rates) == n - 2  # the step still running is left out
    assert rates[0] == (win.start_ms // 1000, 1.0) and all(r == 1.0 for _, r in rates)


class _Ledger:
    def __init__(self, rows):
        self.rows, self.parameters = rows, None

    def query(self, sql, parameters):
        self.parameters = parameters
        return type("Result", (), {"result_rows": self.rows})()


def test_replays_join_airflow_runs_with_the_ledger_per_partition_sorted_newest_first():
    t0 = dt.datetime(2026, 11, 30, 20, tzinfo=dt.UTC)
    runs = [AirflowRun("manual__b", "success", t0, t0 + dt.timedelta(minutes=2), {"topic": "s"}, {"read": 9}, None),
            AirflowRun("manual__a", "failed", t0 - dt.timedelta(hours=1), t0 - dt.timedelta(minutes=50), {}, None, None)]
    naive = dt.datetime(2026, 11, 30, 20, 1)
    ledger = _Ledger([("replay:manual__b", "s", 5, 50, 59, 10, naive, naive),
                      ("replay:manual__b", "s", 0, 0, 4, 5, naive, naive),
                      ("replay:cli", "s", 2, 7, 7, 1, naive - dt.timedelta(minutes=31), naive + dt.timedelta(hours=2))])
    found = opsdata.replays(ledger, "db", runs)
    assert ledger.parameters["wanted"] == ["replay:manual__b", "replay:manual__a"]
    assert [r.run_id for r in found] == ["manual__b", "cli", "manual__a"]
    b = found[0]
    assert [(s.partition, s.first, s.last, s.messages) for s in b.stored] == [(0, 0, 4, 5), (5, 50, 59, 10)]
    assert b.started == t0 and b.finished == t0 + dt.timedelta(minutes=2) and b.counts == {"read": 9}
    cli = found[1]
    assert cli.state is None and cli.first_loaded.tzinfo is dt.UTC and cli.finished == naive.replace(tzinfo=dt.UTC) + dt.timedelta(hours=2)
    assert found[2].stored == [] and found[2].state == "failed"


def test_dead_letter_headers_are_read_as_text_whatever_their_bytes():
    headers = [("quacknet.error.reason", b"invalid_json"), ("quacknet.error.message", b"\xff bad"), ("other", None)]
    assert opsdata._header(headers, "quacknet.error.reason") == "invalid_json"
    assert opsdata._header(headers, "quacknet.error.message") == "\ufffd bad"
    assert opsdata._header(None, "x") == "" and opsdata._header(headers, "other") == ""


def test_a_reader_that_fails_becomes_its_sections_message():
    def broken():
        raise RuntimeError("no\nbroker   at all")

    assert opsdata._run(broken).error == "RuntimeError: no broker at all" and opsdata._run(lambda: 3).value == 3
