"""What the operations page shows, read where it lives: Kafka, ClickHouse and Airflow's metadata.

- **Freshness** (ClickHouse ``scans_store``): ``loaded_at - received_at`` of stored scans, i.e. from
  the API's receipt (the ``202``) to the row being queryable, as percentiles over recent scans and
  per time step; and the newest stored scan's age. Read from the store, not the ``FINAL`` view: the
  view would collapse copies at a cost of a second per 10 M rows, and percentiles do not need it.
- **Consumer lag now** (Kafka): the loader group's committed offset against each partition's end.
- **Lag over the last hours**, with no new infrastructure: at each step boundary ``t`` and partition,
  Kafka's own time index gives the end of the log at ``t`` (``offsets_for_times``: the topic uses
  ``LogAppendTime``, so it is the broker's clock), and ``load_ledger`` gives how far the loader had
  stored by ``t`` (its ``source = 'loader'`` ranges, each written just before the commit). Lag is
  the difference; the last point is the committed lag now.
- **Ingest rate**: messages appended to Kafka per step (the same time-index offsets), and scans
  stored per step by their ``received_at`` (ClickHouse).
- **Audit**: the latest run's findings in ``audit_findings``.
- **Replays**: the ``replay_to_clickhouse`` runs from Airflow's own models (state, start, end, the
  ``copy`` task's XCom counts, the ``plan`` task's ranges) joined with what each run stored per
  partition in ``load_ledger`` (``source = 'replay:<run id>'``).
- **Dead letters**: the DLQ's size (retained messages per partition) and its newest messages with
  their ``quacknet.error.*`` and ``quacknet.source.*`` headers.

Each reader returns plain data; ``gather`` runs them concurrently and keeps each one's failure to
its own section, so an unreachable Kafka still leaves the ClickHouse figures on the page.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from quacknet import kafka
from quacknet.settings import Settings

REPLAY_DAG_ID = "replay_to_clickhouse"
# chart window (hours) -> step (seconds): 30 to 120 points whatever the window
WINDOWS: dict[int, int] = {1: 60, 3: 120, 6: 300, 24: 900}
DEFAULT_HOURS = 3
RECENT = dt.timedelta(minutes=15)  # the freshness headline's window
DLQ_TAIL_PER_PARTITION = 100
DLQ_LATEST_SHOWN = 15


# -- the time axis ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """``hours`` back from ``now`` in steps of ``step_s``, boundaries aligned to the epoch (so a
    ClickHouse ``toStartOfInterval`` bucket and a boundary agree)."""

    now: dt.datetime
    hours: int
    step_s: int

    @property
    def now_ms(self) -> int:
        return int(self.now.timestamp() * 1000)

    @property
    def step_ms(self) -> int:
        return self.step_s * 1000

    @property
    def start_ms(self) -> int:
        return (self.now_ms - self.hours * 3_600_000) // self.step_ms * self.step_ms

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.start_ms / 1000, dt.UTC)

    def boundaries_ms(self) -> list[int]:
        """Every step boundary from the start up to now, then now itself (unless it is one)."""
        points = list(range(self.start_ms, self.now_ms + 1, self.step_ms))
        if points[-1] != self.now_ms:
            points.append(self.now_ms)
        return points


def window(hours: int | None, now: dt.datetime | None = None) -> Window:
    hours = hours if hours in WINDOWS else DEFAULT_HOURS
    return Window((now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC), hours, WINDOWS[hours])


# -- Kafka -----------------------------------------------------------------------------------------

PartitionLag = kafka.PartitionOffsets  # a partition's committed offset and watermarks, and its lag


def lag_now(settings: Settings, group: str, topic: str) -> list[PartitionLag]:
    consumer = kafka.consumer(settings, group)
    try:
        return kafka.partition_offsets(consumer, topic)
    finally:
        consumer.close()


def ends_at(settings: Settings, topic: str, times_ms: list[int], timeout_s: float = 10) -> dict[int, list[int]]:
    """Per partition, the end of the log at each time: the first offset whose (LogAppendTime)
    timestamp is at or after it, or the high watermark when no message is that new."""
    consumer = kafka.consumer(settings, "quacknet-opsview")
    try:
        partitions = kafka.resolve_partitions(consumer, topic)
        highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1] for p in partitions}
        ends: dict[int, list[int]] = {p: [] for p in partitions}
        for t in times_ms:
            for tp in consumer.offsets_for_times([TopicPartition(topic, p, t) for p in partitions], timeout=timeout_s):
                ends[tp.partition].append(highs[tp.partition] if tp.offset < 0 else min(tp.offset, highs[tp.partition]))
        return ends
    finally:
        consumer.close()


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    at: dt.datetime | None
    reason: str
    message: str
    source_topic: str
    source_partition: str
    source_offset: str


@dataclass(frozen=True)
class DeadLetters:
    topic: str
    partitions: list[tuple[int, int, int]]  # (partition, low, high)
    latest: list[DeadLetter]  # newest first
    reasons: list[tuple[str, int]]  # over the tail read, most frequent first
    tail_read: int  # how many of the newest messages were read for ``reasons``

    @property
    def size(self) -> int:
        return sum(high - low for _, low, high in self.partitions)


def _header(headers: list | None, name: str) -> str:
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")
    return ""


def dead_letters(settings: Settings, topic: str, per_partition: int = DLQ_TAIL_PER_PARTITION,
                 shown: int = DLQ_LATEST_SHOWN, timeout_s: float = 5) -> DeadLetters:
    """The DLQ's retained size per partition, and its newest messages (up to ``per_partition`` from
    the end of each, never committing anything)."""
    consumer = kafka.consumer(settings, "quacknet-opsview", **{"isolation.level": "read_uncommitted"})
    try:
        parts = kafka.resolve_partitions(consumer, topic)
        marks = [(p, *consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)) for p in parts]
        wanted = {p: high for p, low, high in marks if high > low}
        starts = {p: max(low, high - per_partition) for p, low, high in marks if high > low}
        consumer.assign([TopicPartition(topic, p, start) for p, start in starts.items()])
        read: list[DeadLetter] = []
        remaining = sum(wanted[p] - starts[p] for p in wanted)  # asking for no more returns as soon as they are in
        deadline = time.monotonic() + timeout_s
        while wanted and remaining > 0 and time.monotonic() < deadline:
            batch = consumer.consume(min(remaining, 500), timeout=0.2)
            remaining -= len(batch)
            for msg in batch:
                if msg.error() is not None:
                    continue
                kind, ts = msg.timestamp()
                h = msg.headers()
                read.append(DeadLetter(msg.partition(), msg.offset(),
                                       dt.datetime.fromtimestamp(ts / 1000, dt.UTC) if kind and ts >= 0 else None,
                                       _header(h, "quacknet.error.reason") or "(no reason header)",
                                       _header(h, "quacknet.error.message"), _header(h, "quacknet.source.topic"),
                                       _header(h, "quacknet.source.partition"), _header(h, "quacknet.source.offset")))
                if msg.offset() + 1 >= wanted.get(msg.partition(), 0):
                    wanted.pop(msg.partition(), None)
    finally:
        consumer.close()
    read.sort(key=lambda d: (d.at or dt.datetime.min.replace(tzinfo=dt.UTC), d.partition, d.offset), reverse=True)
    counts: dict[str, int] = {}
    for d in read:
        counts[d.reason] = counts.get(d.reason, 0) + 1
    return DeadLetters(topic, marks, read[:shown], sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), len(read))


# -- ClickHouse ------------------------------------------------------------------------------------

_LATENCY = "(toUnixTimestamp64Milli(loaded_at) - toUnixTimestamp64Milli(received_at)) / 1000"
FRESHNESS_SQL = f"""
SELECT toStartOfInterval(received_at, toIntervalSecond({{step:UInt32}})) AS t, count() AS scans,
       quantiles(0.5, 0.99)({_LATENCY}) AS q
FROM {{db:Identifier}}.scans_store
WHERE received_at >= {{start:DateTime64(3, 'UTC')}} AND received_at <= {{now:DateTime64(3, 'UTC')}}
GROUP BY t ORDER BY t
"""
# The newest scan whatever its age (a full read of one column), and the headline percentiles over
# the recent ones: two queries, since one pass with quantilesIf would read loaded_at of every row.
NEWEST_SQL = "SELECT max(received_at), max(loaded_at) FROM {db:Identifier}.scans_store"
RECENT_SQL = f"""
SELECT count(), quantiles(0.5, 0.9, 0.99)({_LATENCY}) FROM {{db:Identifier}}.scans_store
WHERE received_at >= {{recent:DateTime64(3, 'UTC')}}
"""
STORED_ROWS_SQL = "SELECT count() FROM {db:Identifier}.scans_store"


@dataclass(frozen=True)
class Freshness:
    recent_scans: int  # received in the last RECENT
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None
    newest_received_at: dt.datetime | None
    newest_loaded_at: dt.datetime | None
    stored_rows: int  # rows in scans_store (copies not yet collapsed count twice)
    series: list[tuple[int, int, float, float]] = field(default_factory=list)  # (bucket start s, scans, p50, p99)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def freshness(client, database: str, win: Window) -> Freshness:
    buckets = client.query(FRESHNESS_SQL, parameters={"db": database, "step": win.step_s, "start": win.start, "now": win.now})
    series = [(int(_utc(t).timestamp()), int(scans), float(q[0]), float(q[1])) for t, scans, q in buckets.result_rows]
    stored = int(client.command(STORED_ROWS_SQL, parameters={"db": database}))
    received, loaded = client.query(NEWEST_SQL, parameters={"db": database}).result_rows[0]
    recent, q = client.query(RECENT_SQL, parameters={"db": database, "recent": win.now - RECENT}).result_rows[0]
    p50, p90, p99 = (float(v) for v in q) if recent else (None, None, None)
    return Freshness(int(recent), p50, p90, p99, _utc(received) if stored else None, _utc(loaded) if stored else None,
                     stored, series)


LOADER_POSITIONS_SQL = """
SELECT partition, intDiv(toUnixTimestamp64Milli(loaded_at) - {start_ms:Int64}, {step_ms:Int64}) AS bucket,
       max(last_offset) + 1 AS position
FROM {db:Identifier}.load_ledger
WHERE topic = {topic:String} AND source = 'loader' AND loaded_at >= {start:DateTime64(3, 'UTC')}
GROUP BY partition, bucket
UNION ALL
SELECT partition, -1 AS bucket, max(last_offset) + 1 AS position
FROM {db:Identifier}.load_ledger
WHERE topic = {topic:String} AND source = 'loader' AND loaded_at < {start:DateTime64(3, 'UTC')}
GROUP BY partition
"""


def loader_positions(client, database: str, topic: str, win: Window) -> dict[int, dict[int, int]]:
    """Per partition: bucket -> the loader's stored position (one past the highest offset) reached in
    that bucket; bucket -1 holds the position before the window."""
    rows = client.query(LOADER_POSITIONS_SQL, parameters={
        "db": database, "topic": topic, "start": win.start, "start_ms": win.start_ms, "step_ms": win.step_ms}).result_rows
    found: dict[int, dict[int, int]] = {}
    for partition, bucket, position in rows:
        found.setdefault(int(partition), {})[int(bucket)] = int(position)
    return found


def lag_series(win: Window, ends: dict[int, list[int]], positions: dict[int, dict[int, int]],
               now: list[PartitionLag]) -> dict[int, list[int]]:
    """Per partition, the loader's lag at each boundary of ``win`` (``win.boundaries_ms()``): the end
    of the log then minus what the loader had stored by then; the last point (now) is the committed
    lag Kafka reports."""
    boundaries = win.boundaries_ms()
    low = {p.partition: p.low for p in now}
    current = {p.partition: p.lag for p in now}
    series: dict[int, list[int]] = {}
    for partition, partition_ends in sorted(ends.items()):
        buckets = positions.get(partition, {})
        stored_before = buckets.get(-1, low.get(partition, 0))
        ordered = sorted((b, pos) for b, pos in buckets.items() if b >= 0)
        values, i = [], 0
        for k, boundary in enumerate(boundaries):
            # ledger buckets wholly before this boundary: bucket b covers [start + b*step, start + (b+1)*step)
            while i < len(ordered) and win.start_ms + (ordered[i][0] + 1) * win.step_ms <= boundary:
                stored_before = max(stored_before, ordered[i][1])
                i += 1
            values.append(max(0, partition_ends[k] - max(stored_before, low.get(partition, 0))))
        if partition in current:
            values[-1] = current[partition]
        series[partition] = values
    return series


def produced_rates(win: Window, ends: dict[int, list[int]]) -> list[tuple[int, float]]:
    """Messages appended to the topic per second in each whole step: (step start s, rate)."""
    boundaries = win.boundaries_ms()
    rates = []
    for k in range(len(boundaries) - 1):
        span_ms = boundaries[k + 1] - boundaries[k]
        if span_ms != win.step_ms:  # the step still running
            continue
        appended = sum(e[k + 1] - e[k] for e in ends.values())
        rates.append((boundaries[k] // 1000, appended / win.step_s))
    return rates


LATEST_AUDIT_SQL = """
SELECT run_at, check, subject, topic, partition, ok, value, limit, message FROM {db:Identifier}.audit_findings
WHERE run_at = (SELECT max(run_at) FROM {db:Identifier}.audit_findings)
ORDER BY ok, check, topic, partition
"""


def latest_audit(client, database: str) -> list[dict[str, Any]]:
    result = client.query(LATEST_AUDIT_SQL, parameters={"db": database})
    return [{**dict(zip(result.column_names, row, strict=True)), "run_at": _utc(row[0])} for row in result.result_rows]


REPLAY_LEDGER_SQL = """
SELECT source, topic, partition, min(first_offset), max(last_offset), sum(last_offset - first_offset + 1),
       min(loaded_at), max(loaded_at)
FROM {db:Identifier}.load_ledger
WHERE source IN (
    SELECT source FROM {db:Identifier}.load_ledger WHERE startsWith(source, 'replay:')
    GROUP BY source ORDER BY max(loaded_at) DESC LIMIT {limit:UInt32})
   OR source IN {wanted:Array(String)}
GROUP BY source, topic, partition
ORDER BY source, topic, partition
"""


@dataclass(frozen=True)
class StoredRange:
    topic: str
    partition: int
    first: int
    last: int
    messages: int  # offsets covered (a range's messages: stored, merged or dead-lettered)


@dataclass
class Replay:
    run_id: str
    source: str  # the ledger's label: replay:<run id>
    state: str | None = None  # the Airflow run's; None when Airflow does not know the run
    start_date: dt.datetime | None = None
    end_date: dt.datetime | None = None
    conf: dict = field(default_factory=dict)
    counts: dict | None = None  # the copy task's return value
    planned: list[dict] | None = None  # the plan task's return value
    stored: list[StoredRange] = field(default_factory=list)
    first_loaded: dt.datetime | None = None
    last_loaded: dt.datetime | None = None

    @property
    def started(self) -> dt.datetime | None:
        return self.start_date or self.first_loaded

    @property
    def topic(self) -> str | None:
        return (self.conf or {}).get("topic") or (self.stored[0].topic if self.stored else None)

    @property
    def messages(self) -> int:
        """Offsets the replay stored, over all partitions."""
        return sum(s.messages for s in self.stored)

    def as_dict(self) -> dict:
        return {**asdict(self), "topic": self.topic, "messages": self.messages, "started": self.started,
                "finished": self.finished}

    @property
    def finished(self) -> dt.datetime | None:
        return self.end_date if self.state is not None else self.last_loaded


@dataclass(frozen=True)
class AirflowRun:
    run_id: str
    state: str
    start_date: dt.datetime | None
    end_date: dt.datetime | None
    conf: dict
    counts: dict | None
    planned: list[dict] | None


def replays(client, database: str, runs: list[AirflowRun], limit: int = 20) -> list[Replay]:
    """The newest replays: every Airflow run given, and replays the ledger knows that Airflow does
    not (run outside it, or its metadata cleaned), newest first, at most ``limit``."""
    by_source: dict[str, Replay] = {}
    for run in runs:
        source = f"replay:{run.run_id}"
        by_source[source] = Replay(run.run_id, source, run.state, _utc(run.start_date), _utc(run.end_date), run.conf or {},
                                   run.counts, run.planned)
    rows = client.query(REPLAY_LEDGER_SQL, parameters={"db": database, "limit": limit, "wanted": list(by_source)}).result_rows
    for source, topic, partition, first, last, messages, loaded_min, loaded_max in rows:
        replay = by_source.get(source)
        if replay is None:
            replay = by_source[source] = Replay(source.removeprefix("replay:"), source)
        replay.stored.append(StoredRange(topic, int(partition), int(first), int(last), int(messages)))
        lo, hi = _utc(loaded_min), _utc(loaded_max)
        replay.first_loaded = min(replay.first_loaded or lo, lo)
        replay.last_loaded = max(replay.last_loaded or hi, hi)
    ordered = sorted(by_source.values(), key=lambda r: r.started or r.last_loaded or dt.datetime.min.replace(tzinfo=dt.UTC),
                     reverse=True)
    for r in ordered:
        r.stored.sort(key=lambda s: (s.topic, s.partition))
    return ordered[:limit]


def airflow_replay_runs(limit: int = 20, dag_id: str = REPLAY_DAG_ID) -> list[AirflowRun]:
    """The newest runs of the replay DAG with their ``plan`` and ``copy`` return values, read through
    Airflow's own models (this runs inside the API server, next to its metadata database)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)
                               .order_by(DagRun.run_after.desc()).limit(limit)).all()
        ids = [r.run_id for r in runs]
        values: dict[tuple[str, str], Any] = {}
        if ids:
            for xcom in session.scalars(select(XComModel).where(
                    XComModel.dag_id == dag_id, XComModel.run_id.in_(ids), XComModel.task_id.in_(["plan", "copy"]),
                    XComModel.key == "return_value", XComModel.map_index == -1)).all():
                values[(xcom.run_id, xcom.task_id)] = XComModel.deserialize_value(xcom)
        return [AirflowRun(r.run_id, str(r.state), r.start_date, r.end_date, dict(r.conf or {}),
                           _dict_or_none(values.get((r.run_id, "copy"))), _list_or_none(values.get((r.run_id, "plan"))))
                for r in runs]


def _dict_or_none(value: Any) -> dict | None:
    return value if isinstance(value, dict) else None


def _list_or_none(value: Any) -> list | None:
    return value if isinstance(value, list) else None


# -- all of it -------------------------------------------------------------------------------------

@dataclass
class Section:
    """One reader's result, or the error that kept it from the page."""

    value: Any = None
    error: str | None = None


@dataclass
class Overview:
    win: Window
    topic: str
    dlq_topic: str
    group: str
    lag: Section
    history: Section  # {"boundaries_ms": [...], "lag": {p: [...]}, "produced": [(t, rate)]}
    freshness: Section
    audit: Section
    replays: Section
    dead_letters: Section
    elapsed_s: float = 0.0


def _run(read: Callable[[], Any]) -> Section:
    try:
        return Section(read())
    except Exception as exc:  # shown in its section; the rest of the page still renders
        return Section(None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}")


def gather(settings: Settings, client_factory: Callable[[], tuple[Any, str]],
           runs: Callable[[], list[AirflowRun]] | None = None, hours: int | None = None,
           now: dt.datetime | None = None) -> Overview:
    """Everything the page shows, its readers run concurrently (each with its own ClickHouse client)."""
    started = time.perf_counter()
    win = window(hours, now)
    topic, group = settings.scans_topic, settings.loader_group

    def with_client(read: Callable):
        client, database = client_factory()
        try:
            return read(client, database)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=7, thread_name_prefix="opsview") as pool:
        lag_f = pool.submit(_run, lambda: lag_now(settings, group, topic))
        ends_f = pool.submit(_run, lambda: ends_at(settings, topic, win.boundaries_ms()))
        positions_f = pool.submit(_run, lambda: with_client(lambda c, db: loader_positions(c, db, topic, win)))
        fresh_f = pool.submit(_run, lambda: with_client(lambda c, db: freshness(c, db, win)))
        audit_f = pool.submit(_run, lambda: with_client(latest_audit))
        dlq_f = pool.submit(_run, lambda: dead_letters(settings, settings.dlq_topic))

        def read_replays():
            known = runs() if runs is not None else []
            return with_client(lambda c, db: replays(c, db, known))

        replays_f = pool.submit(_run, read_replays)
        lag, ends, positions = lag_f.result(), ends_f.result(), positions_f.result()
        if lag.error or ends.error or positions.error:
            history = Section(None, lag.error or ends.error or positions.error)
        else:
            history = _run(lambda: {"boundaries_ms": win.boundaries_ms(),
                                    "lag": lag_series(win, ends.value, positions.value, lag.value),
                                    "produced": produced_rates(win, ends.value)})
        overview = Overview(win, topic, settings.dlq_topic, group, lag, history, fresh_f.result(), audit_f.result(),
                            replays_f.result(), dlq_f.result())
    overview.elapsed_s = time.perf_counter() - started
    return overview
