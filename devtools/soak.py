"""Soak and fault run: the whole local stack under load with injected faults, then an exact audit.

Client processes offer scans through the real ingest API at a set rate, each with a unique
``scan_id``, and record every id that got a ``202`` (a share of batches is sent twice, as a phone
retry would; a request that fails or gets 503 is retried with the same ids until it gets its 202).
Meanwhile faults are injected on a schedule: ``kill -9`` and SIGTERM of the loader, an API worker
restart, Kafka (every node) and the ClickHouse gateway stopped for a while, a replay DAG run over a
recent range, and an offset reset of the stopped loader group to an earlier time (both on the real
Airflow scheduler); on a cluster of three or more nodes also ``broker_loss``: ``kill -9`` of the broker
leading most partitions of the scans topic, restarted after a while, waited for until every replica
is back in sync. A few poison messages go straight onto the topic. Then the pipeline drains and the
audit is exact: every accepted id in ClickHouse exactly once, no row that was never accepted, the
dead-letter topic holding exactly the poison, and the retention audit DAG passing.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from devtools import airflow, credentials
from devtools.samples import scan_payload
from devtools.services import API, CLICKHOUSE, LOADER, kafka_node, kafka_nodes
from devtools.settings import DevSettings
from devtools.supervisor import ServiceError, Supervisor
from quacknet import kafka, warehouse
from quacknet.logs import get_logger
from quacknet.retry import Backoff

log = get_logger(__name__)

FAULTS = ("loader_kill9", "api_worker_restart", "kafka_outage", "loader_sigterm", "clickhouse_outage", "replay",
          "offset_reset")
CLUSTER_FAULTS = ("broker_loss",)  # only with three or more nodes: the cluster must survive losing one


def faults_for(settings: DevSettings) -> tuple[str, ...]:
    """Every fault this stack can take: the cluster's too on three nodes or more (broker_loss after the
    loader's kill -9, so the two do not overlap)."""
    if settings.kafka_nodes < 3:
        return FAULTS
    return FAULTS[:1] + CLUSTER_FAULTS + FAULTS[1:]


@dataclass(frozen=True)
class SoakConfig:
    duration_s: float = 600
    rate: int = 3000  # scans per second offered, over all clients
    clients: int = 4
    batch: int = 50  # scans per request
    retry_share: float = 0.02  # share of accepted batches sent again, as a phone retry
    poison: int = 20
    faults: tuple[str, ...] = FAULTS
    outage_s: float = 15  # how long the broker and the gateway stay down
    drain_timeout_s: float = 300


@dataclass
class Report:
    offered: int = 0
    accepted: int = 0
    rejected: int = 0
    request_retries: int = 0
    phone_retries: int = 0
    unanswered: int = 0
    spooled: int = 0
    resent_from_spool: int = 0
    stored: int = 0
    missing: int = 0
    duplicated: int = 0
    unexpected: int = 0
    poison_sent: int = 0
    dlq: int = 0  # distinct poison origins in the DLQ
    dlq_copies: int = 0
    dlq_unexpected: int = 0  # DLQ messages whose origin is not a poison message we sent
    faults: list[tuple[str, float, str]] = field(default_factory=list)  # name, seconds into the run, outcome
    audit_dag: str = "not run"
    throughput: float = 0.0
    freshness_p50_s: float = float("nan")
    freshness_p99_s: float = float("nan")
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        # stored == accepted follows from no missing, no unexpected and no duplicated
        return (self.missing == 0 and self.duplicated == 0 and self.unexpected == 0 and self.unanswered == 0
                and self.dlq == self.poison_sent and self.dlq_unexpected == 0 and self.audit_dag == "success"
                and all(outcome == "ok" for _, _, outcome in self.faults))

    def table(self) -> str:
        rows = [
            ("offered (unique scans)", f"{self.offered:,}"), ("accepted (202)", f"{self.accepted:,}"),
            ("rejected", f"{self.rejected:,}"), ("requests retried (503 / errors)", f"{self.request_retries:,}"),
            ("re-sent as phone retries", f"{self.phone_retries:,}"), ("never answered", f"{self.unanswered:,}"),
            ("spooled by the API", f"{self.spooled:,}"), ("re-sent from the spool", f"{self.resent_from_spool:,}"),
            ("stored in quacknet.scans", f"{self.stored:,}"), ("missing", f"{self.missing:,}"),
            ("duplicated", f"{self.duplicated:,}"), ("stored but never accepted", f"{self.unexpected:,}"),
            ("poison sent / in the DLQ", f"{self.poison_sent:,} / {self.dlq:,} (as {self.dlq_copies:,} DLQ messages; "
                                         f"{self.dlq_unexpected:,} that were not poison)"),
            ("faults injected", f"{len(self.faults)}: " + ", ".join(f"{n}@{t:.0f}s={o}" for n, t, o in self.faults)),
            ("retention audit DAG", self.audit_dag),
            ("throughput (accepted)", f"{self.throughput:,.0f} scans/s over {self.seconds:.0f} s"),
            ("freshness 202 -> stored (probes)", f"p50 {self.freshness_p50_s:.2f} s, p99 {self.freshness_p99_s:.2f} s "
                                                 "(faults included)"),
            ("verdict", "PASS: none lost, none doubled" if self.ok else "FAIL"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


# -- load ------------------------------------------------------------------------------------------

def _post(conn_box: list, host: str, port: int, key: str, body: bytes) -> tuple[int, dict]:
    if conn_box[0] is None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn_box[0] = conn
    conn = conn_box[0]
    try:
        conn.request("POST", "/v1/scans", body=body, headers={"X-API-Key": key, "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    except (OSError, http.client.HTTPException, ValueError):
        conn.close()
        conn_box[0] = None
        return 0, {}


def _client(host: str, port: int, key: str, rate: float, seconds: float, prefix: str, out: str, batch: int,
            retry_share: float, seed: int) -> None:
    """One phone fleet: batches at ``rate`` scans/s; every 202'd id goes to ``out`` with its time."""
    rng = random.Random(seed)
    stats = {"offered": 0, "rejected": 0, "request_retries": 0, "phone_retries": 0, "unanswered": 0}
    conn_box: list = [None]
    interval, start = batch / rate, time.monotonic()
    with open(out, "w") as ids:
        n = 0
        while time.monotonic() - start < seconds:
            now = dt.datetime.now(dt.UTC)
            payloads = [scan_payload(f"{prefix}-{seed}-{rng.randrange(50)}", now=now, rng=rng) for _ in range(batch)]
            body = json.dumps(payloads).encode()
            stats["offered"] += batch
            backoff = Backoff(0.2, 2.0, deadline_s=seconds + 120)
            while True:
                status, answer = _post(conn_box, host, port, key, body)
                if status == 202:
                    stamp = time.time()
                    ids.write("".join(f"{sid}\t{stamp:.3f}\n" for sid in answer["accepted"]))
                    stats["rejected"] += len(answer.get("rejected", []))
                    break
                if 400 <= status < 500 and status != 429:
                    stats["rejected"] += batch
                    break
                stats["request_retries"] += 1
                if not backoff.sleep():
                    stats["unanswered"] += batch
                    ids.write("".join(f"{p['scan_id']}\t-1\n" for p in payloads))
                    break
            if rng.random() < retry_share:  # the phone did not see the 202 and sends the batch again
                if _post(conn_box, host, port, key, body)[0] == 202:
                    stats["phone_retries"] += batch
            n += 1
            time.sleep(max(0.0, start + n * interval - time.monotonic()))
    Path(out + ".stats").write_text(json.dumps(stats))


# -- faults ----------------------------------------------------------------------------------------

def _restart(sup: Supervisor, svc, kill: bool = False, down_s: float = 0.0) -> None:
    sup.stop(svc, kill=kill)
    time.sleep(down_s)
    sup.start(svc)


def _broker_loss(settings: DevSettings, sup: Supervisor, down_s: float) -> None:
    """kill -9 of the broker leading most partitions of the scans topic; restarted after ``down_s``; then
    every replica of the owned topics back in sync."""
    admin = kafka.admin(settings)
    leaders = Counter(m.leader for m in admin.list_topics(settings.scans_topic, timeout=10)
                      .topics[settings.scans_topic].partitions.values())
    victim = kafka_node(leaders.most_common(1)[0][0])
    sup.stop(victim, kill=True)
    time.sleep(down_s)
    sup.start(victim)
    deadline = time.monotonic() + 180
    names = [settings.scans_topic, settings.dlq_topic]
    while True:
        meta = kafka.admin(settings).list_topics(timeout=10).topics
        lagging = [(n, p) for n in names for p, m in meta[n].partitions.items() if len(m.isrs) < len(m.replicas)]
        if not lagging:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"{victim.name} rejoined but partitions {lagging} are not back in sync after 180 s")
        time.sleep(1)


def _kafka_outage(settings: DevSettings, sup: Supervisor, down_s: float) -> None:
    """Every Kafka node stopped (SIGTERM) for ``down_s``: the API spools, then re-sends."""
    nodes = kafka_nodes(settings)
    sup.stop_group(nodes)
    time.sleep(down_s)
    sup.start_group(nodes)


def _api_worker_restart(sup: Supervisor) -> None:
    master = sup.process(API)
    workers = psutil.Process(master.pid).children()
    os.kill(workers[0].pid, signal.SIGTERM)  # gunicorn replaces it; the worker flushes its producer on exit


def _replay(settings: DevSettings) -> None:
    conf = {"topic": settings.scans_topic,
            "start_time": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)).isoformat()}
    state, run = airflow.run_dag(settings, "replay_to_clickhouse", conf)
    if state != "success":
        raise ServiceError(f"replay run {run['dag_run_id']} {state}")


def _offset_reset(settings: DevSettings, sup: Supervisor) -> None:
    sup.stop(LOADER)
    try:
        conf = {"group": settings.loader_group, "topic": settings.scans_topic, "kind": "datetime",
                "datetime": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=45)).isoformat(), "dry_run": False,
                "wait_s": 60}
        state, run = airflow.run_dag(settings, "offset_reset", conf)
        if state != "success":
            raise ServiceError(f"offset reset run {run['dag_run_id']} {state}")
    finally:
        sup.start(LOADER)


def fault_actions(settings: DevSettings, sup: Supervisor, config: SoakConfig) -> dict[str, Callable[[], None]]:
    return {
        "loader_kill9": lambda: _restart(sup, LOADER, kill=True, down_s=1),
        "loader_sigterm": lambda: _restart(sup, LOADER),
        "api_worker_restart": lambda: _api_worker_restart(sup),
        "kafka_outage": lambda: _kafka_outage(settings, sup, config.outage_s),
        "broker_loss": lambda: _broker_loss(settings, sup, config.outage_s),
        "clickhouse_outage": lambda: _restart(sup, CLICKHOUSE, down_s=config.outage_s),
        "replay": lambda: _replay(settings),
        "offset_reset": lambda: _offset_reset(settings, sup),
    }


# -- poison, drain, audit --------------------------------------------------------------------------

def _end_offsets(settings: DevSettings, topic: str) -> dict[int, int]:
    consumer = kafka.consumer(settings, "soak-watermarks")
    try:
        return {po.partition: po.high for po in kafka.partition_offsets(consumer, topic)}
    finally:
        consumer.close()


def send_poison(settings: DevSettings, n: int) -> set[tuple[int, int]]:
    """Undecodable and unknown-schema-version messages; returns their (partition, offset)."""
    producer, where = kafka.producer(settings), set()

    def report(err, msg):
        if err is None:
            where.add((msg.partition(), msg.offset()))

    for i in range(n):
        value = b'{"not": "a scan"' if i % 2 else json.dumps({**scan_payload("poison"), "schema_version": 99}).encode()
        producer.produce(settings.scans_topic, key=f"poison-{i}".encode(), value=value, on_delivery=report)
    if producer.flush(30) != 0 or len(where) != n:
        raise ServiceError("the broker did not take the poison messages")
    return where


def dead_lettered_since(settings: DevSettings, start: dict[int, int]) -> tuple[set[tuple[int, int]], int]:
    """The origins (partition, offset on the scans topic) of what reached the DLQ since ``start``,
    and how many DLQ messages that was (a poison message re-read after a reset or a replay is
    dead-lettered again: same origin)."""
    ends = _end_offsets(settings, settings.dlq_topic)
    todo = {p: end for p, end in ends.items() if end > start.get(p, 0)}
    consumer = kafka.consumer(settings, "soak-dlq-reader")
    origins, copies = set(), 0
    try:
        consumer.assign([TopicPartition(settings.dlq_topic, p, start.get(p, 0)) for p in todo])
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error() or msg.partition() not in todo:
                    continue
                headers = dict(msg.headers() or [])
                if headers.get("quacknet.source.topic", b"").decode() == settings.scans_topic:
                    origins.add((int(headers["quacknet.source.partition"]), int(headers["quacknet.source.offset"])))
                    copies += 1
                if msg.offset() + 1 >= todo[msg.partition()]:
                    del todo[msg.partition()]
    finally:
        consumer.close()
    return origins, copies


def _metrics(url: str) -> dict[str, float]:
    """A Prometheus endpoint's samples, summed over labels; empty while it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def drain(settings: DevSettings, timeout_s: float) -> None:
    """Until the API's queues and spool are empty and the loader has committed every message."""
    api = f"http://{settings.api_host}:{settings.api_port}/metrics"
    consumer = kafka.consumer(settings, settings.loader_group)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            metrics = _metrics(api)
            waiting = (metrics.get("quacknet_delivery_spool_depth", float("nan"))
                       + metrics.get("quacknet_delivery_queue_depth", float("nan")))
            lag = sum(max(0, po.high - (po.committed or 0)) for po in kafka.partition_offsets(consumer, settings.scans_topic))
            log.info("soak.draining", api_waiting=waiting, loader_lag=lag)
            if waiting == 0 and lag == 0:
                return
            time.sleep(2)
    finally:
        consumer.close()
    raise TimeoutError(f"the pipeline did not drain in {timeout_s:.0f}s")


class FreshnessProbe:
    """Twice a second one probe scan through the API; the time from its 202 until the loader has
    stored it (a replay or reset may re-store a scan later, so stored rows' loaded_at cannot say)."""

    def __init__(self, settings: DevSettings, key: str, prefix: str):
        self.settings, self.key, self.device = settings, key, f"{prefix}-probe"
        self.accepted: dict[str, float] = {}
        self.lags: list[float] = []
        self._pending: dict[str, float] = {}
        self._posting = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="freshness-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop_posting(self) -> None:
        self._posting = False

    def stop(self, settle_s: float = 60) -> None:
        deadline = time.monotonic() + settle_s
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.5)
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        conn_box: list = [None]
        client, next_post = None, 0.0
        while not self._stop.is_set():
            if self._posting and time.monotonic() >= next_post:
                next_post = time.monotonic() + 0.5
                body = json.dumps(scan_payload(self.device)).encode()
                status, answer = _post(conn_box, self.settings.api_host, self.settings.api_port, self.key, body)
                if status == 202:
                    for sid in answer["accepted"]:
                        self.accepted[sid] = self._pending[sid] = time.time()
            if self._pending:
                try:
                    client = client or warehouse.client(self.settings)
                    seen = client.query(f"SELECT DISTINCT toString(scan_id) FROM {self.settings.clickhouse_database}.scans_store "
                                        "WHERE scan_id IN {ids:Array(UUID)}", parameters={"ids": list(self._pending)}).result_rows
                except Exception:  # ClickHouse down: the probes wait, and their lag grows, as it should
                    client = None
                    seen = []
                now = time.time()
                for (sid,) in seen:
                    self.lags.append(now - self._pending.pop(sid))
            time.sleep(0.25)

    def percentiles(self) -> tuple[float, float]:
        lags = sorted(self.lags)
        if not lags:
            return float("nan"), float("nan")
        return statistics.median(lags), lags[max(0, int(len(lags) * 0.99) - 1)]


def audit(settings: DevSettings, prefix: str, accepted: dict[str, float], report: Report) -> None:
    client = warehouse.client(settings)
    try:
        stored = [sid for (sid,) in client.query(
            f"SELECT toString(scan_id) FROM {settings.clickhouse_database}.scans WHERE startsWith(device_id, {{p:String}})",
            parameters={"p": prefix + "-"}).result_rows]
    finally:
        client.close()
    unique = set(stored)
    report.stored, report.duplicated = len(stored), len(stored) - len(unique)
    report.missing = len(set(accepted) - unique)
    report.unexpected = len(unique - set(accepted))


# -- the run ---------------------------------------------------------------------------------------

def run(settings: DevSettings, config: SoakConfig, echo=print) -> Report:
    sup, report = Supervisor(settings), Report()
    key = credentials.read(settings)["QUACKNET_API_KEY"]
    prefix = f"soak-{uuid.uuid4().hex[:8]}"
    dlq_start = _end_offsets(settings, settings.dlq_topic)
    api_metrics = f"http://{settings.api_host}:{settings.api_port}/metrics"
    before = _metrics(api_metrics)
    actions = fault_actions(settings, sup, config)
    workdir = Path(tempfile.mkdtemp(prefix="quacknet-soak-"))
    ctx = mp.get_context("spawn")
    clients = [ctx.Process(target=_client, args=(settings.api_host, settings.api_port, key, config.rate / config.clients,
                                                 config.duration_s, prefix, str(workdir / f"c{i}"), config.batch,
                                                 config.retry_share, i), daemon=True)
               for i in range(config.clients)]
    echo(f"soak {prefix}: {config.rate:,} scans/s for {config.duration_s:.0f} s from {config.clients} clients; "
         f"faults: {', '.join(config.faults) or 'none'}")
    probe = FreshnessProbe(settings, key, prefix)
    t0 = time.monotonic()
    for c in clients:
        c.start()
    probe.start()
    poison = send_poison(settings, config.poison)
    report.poison_sent = len(poison)
    # faults spread over the first three quarters of the run, the rest for recovery under load
    schedule = [(config.duration_s * 0.75 * (i + 1) / (len(config.faults) + 1), name) for i, name in enumerate(config.faults)]
    for at, name in schedule:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        started = time.monotonic() - t0
        try:
            actions[name]()
            outcome = "ok"
        except Exception as exc:  # a fault that could not be injected is a failed run, said plainly
            outcome = f"error: {exc}"
            stopped = [svc for svc in kafka_nodes(settings) if sup.process(svc) is None]
            if stopped:
                sup.start_group(stopped)
            for svc in (CLICKHOUSE, API, LOADER):
                if sup.process(svc) is None:
                    sup.start(svc)
        report.faults.append((name, started, outcome))
        echo(f"  fault {name} at {started:.0f}s: {outcome} ({time.monotonic() - t0 - started:.1f}s)")
    for c in clients:
        c.join(timeout=config.duration_s + 300)
    report.seconds = time.monotonic() - t0
    probe.stop_posting()
    accepted: dict[str, float] = {}
    for i in range(config.clients):
        stats = json.loads(Path(workdir / f"c{i}.stats").read_text())
        for name in ("offered", "rejected", "request_retries", "phone_retries", "unanswered"):
            setattr(report, name, getattr(report, name) + stats[name])
        for line in Path(workdir / f"c{i}").read_text().splitlines():
            sid, stamp = line.split("\t")
            if float(stamp) >= 0:
                accepted.setdefault(sid, float(stamp))
    echo(f"load done: {len(accepted):,} accepted; draining")
    drain(settings, config.drain_timeout_s)
    probe.stop()
    accepted.update(probe.accepted)
    report.accepted = len(accepted)
    report.throughput = report.accepted / config.duration_s
    report.freshness_p50_s, report.freshness_p99_s = probe.percentiles()
    after = _metrics(api_metrics)
    for field_name, metric in (("spooled", "quacknet_delivery_spooled_total"), ("resent_from_spool", "quacknet_delivery_resent_total")):
        setattr(report, field_name, int(after.get(metric, 0) - before.get(metric, 0)))
    audit(settings, prefix, accepted, report)
    origins, report.dlq_copies = dead_lettered_since(settings, dlq_start)
    report.dlq, report.dlq_unexpected = len(origins & poison), len(origins - poison)
    state, _ = airflow.run_dag(settings, "retention_audit", {"groups": [settings.loader_group], "min_hours_left": 1.0,
                                                             "loader_group": settings.loader_group})
    report.audit_dag = state
    return report
