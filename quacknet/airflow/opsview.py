"""The operators' pages in the Airflow UI: operations (freshness, lag, ingest, audit, replays, dead
letters) and the coverage map.

``plugins/quacknet_plugin.py`` mounts ``create_app`` in Airflow's API server behind Airflow's own
login: a logged-out browser asking for a page is sent to Airflow's login page (and back after it),
an API client gets 401. The figures come from Kafka and ClickHouse (``opsdata``) and, for replays,
from Airflow's own models; the charts (uPlot) and the map (Leaflet, Natural Earth outlines from
world-atlas, topojson-client) are vendored under ``static/vendor`` (``scripts/vendor-web-assets.sh``),
so the pages load nothing from outside. Every value written into a page is escaped: findings, DLQ
reasons and run ids carry topic names and error text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import json
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from quacknet import coverage, warehouse
from quacknet.airflow import opsdata
from quacknet.errors import InvalidInput, QuackNetError
from quacknet.scan import Technology
from quacknet.settings import Settings
from quacknet.units import human_bytes, human_count, human_duration, human_rate

STATIC = Path(__file__).parent / "static"
VENDOR = {
    "uplot_js": "vendor/uplot-1.6.32/uPlot.iife.min.js",
    "uplot_css": "vendor/uplot-1.6.32/uPlot.min.css",
    "leaflet_js": "vendor/leaflet-1.9.4/leaflet.js",
    "leaflet_css": "vendor/leaflet-1.9.4/leaflet.css",
    "topojson_js": "vendor/topojson-client-3.1.0/topojson-client.min.js",
    "countries": "vendor/world-atlas-2.0.2/countries-50m.json",
}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".json": "application/json",
          ".png": "image/png", ".txt": "text/plain; charset=utf-8"}


def e(value: Any) -> str:
    """Escaped for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def script_json(value: Any) -> str:
    """JSON safe inside a <script type="application/json"> element (no "</script>" can close it)."""
    return (json.dumps(value, default=_json_default, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso(value)
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with its zone: 2026-11-30T21:00:00.123Z."""
    if value is None:
        return None
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def when(value: dt.datetime | None) -> str:
    """A time as shown: "2026-11-30 21:00:03 UTC"."""
    if value is None:
        return "—"
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: dt.datetime | None, now: dt.datetime) -> str:
    if value is None:
        return "never"
    seconds = (now - value).total_seconds()
    return f"in {human_duration(-seconds)}" if seconds < 0 else f"{human_duration(seconds)} ago"


def time_tag(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if value is None:
        return "<span class='muted'>—</span>"
    rel = f" <span class='muted'>({e(ago(value, now))})</span>" if now is not None else ""
    return f"<time datetime='{e(iso(value))}'>{e(when(value))}</time>{rel}"


# -- figures in human units ------------------------------------------------------------------------

def finding_value(check: str, subject: str, value: float) -> str:
    """An audit finding's number in its unit (the findings store bare floats)."""
    if value is None or value < 0 and check in ("retention", "disk_use", "disk_worst_case"):
        return "unset" if check == "retention" else "unknown"
    if check == "retention":
        return human_duration(value / 1000) if subject == "retention.ms" else human_bytes(value)
    if check in ("disk_use", "disk_worst_case"):
        return human_bytes(value)
    if check == "disk_free":
        return f"{value:.1%}"
    if check == "lag_horizon":
        return human_duration(value * 3600)
    if check == "completeness":
        return f"{human_count(value)} missing"
    return f"{value:g}"


def finding_where(f: dict) -> str:
    """Where a finding is: "topic" for topic-level ones (stored with partition -1), "topic[3]" for a
    partition, the broker log dir for disk ones."""
    topic, partition = f.get("topic") or "", f.get("partition", -1)
    if topic and partition is not None and partition >= 0:
        return f"{topic}[{partition}]"
    return topic or f.get("subject") or "all owned topics"


# -- the operations page ---------------------------------------------------------------------------

def _head(title: str, static: str, extra: Sequence[str] = ()) -> str:
    links = "".join(f"<link rel='stylesheet' href='{e(static + s)}'>" for s in extra if s.endswith(".css"))
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><link rel='icon' href='data:,'>{links}"
            f"<link rel='stylesheet' href='{e(static)}ops.css'></head>")


def _nav(root: str, current: str, now: dt.datetime) -> str:
    items = [("operations", f"{root}/", "Operations"), ("map", f"{root}/map", "Coverage map")]
    links = "".join(f"<a href='{e(href)}' class='{'current' if key == current else ''}'>{e(label)}</a>" for key, href, label in items)
    return (f"<header class='top'><div class='brand'>QuackNet</div><nav>{links}</nav>"
            f"<div class='stamp'>as of {time_tag(now)}</div></header>")


def _error(section: opsdata.Section, what: str) -> str:
    return f"<p class='error' role='alert'>Could not read {e(what)}: {e(section.error)}</p>"


def _tile(key: str, label: str, value: str, detail: str, state: str = "", raw: Any = None) -> str:
    data = f" data-value='{e(raw)}'" if raw is not None else ""
    return (f"<div class='tile {e(state)}' data-tile='{e(key)}'><div class='label'>{e(label)}</div>"
            f"<div class='value'{data}>{value}</div><div class='detail'>{detail}</div></div>")


def _freshness_tiles(o: opsdata.Overview) -> str:
    s = o.freshness
    if s.error:
        return _tile("freshness", "202 → queryable", "?", e(s.error), "bad") + _tile("newest", "Newest stored scan", "?", "", "bad")
    f: opsdata.Freshness = s.value
    if f.recent_scans:
        state = "good" if f.p99_s <= 5 else "warn" if f.p99_s <= 60 else "bad"
        fresh = _tile("freshness", "202 → queryable (p50)", e(human_duration(f.p50_s)),
                      f"p90 {e(human_duration(f.p90_s))} · p99 {e(human_duration(f.p99_s))} · "
                      f"{e(human_count(f.recent_scans))} scans in the last {e(human_duration(opsdata.RECENT.total_seconds()))}",
                      state, round(f.p50_s, 3))
    else:
        fresh = _tile("freshness", "202 → queryable", "no scans",
                      f"none received in the last {e(human_duration(opsdata.RECENT.total_seconds()))}", "warn")
    if f.newest_received_at is None:
        newest = _tile("newest", "Newest stored scan", "none", "the store is empty", "warn")
    else:
        age = (o.win.now - f.newest_received_at).total_seconds()
        newest = _tile("newest", "Newest stored scan", e(human_duration(max(age, 0))) + " old",
                       f"received {time_tag(f.newest_received_at)} · {e(human_count(f.stored_rows))} rows stored",
                       "good" if age < 300 else "warn", round(age, 3))
    return fresh + newest


def _lag_tiles(o: opsdata.Overview) -> str:
    if o.lag.error:
        return _tile("lag", "Loader lag", "?", e(o.lag.error), "bad")
    total = sum(p.lag for p in o.lag.value)
    state = "good" if total < 10_000 else "warn" if total < 1_000_000 else "bad"
    return _tile("lag", "Loader lag now", e(human_count(total)) + " msgs",
                 f"group {e(o.group)} · {len(o.lag.value)} partitions of {e(o.topic)}", state, total)


def _ingest_tile(o: opsdata.Overview) -> str:
    if o.history.error:
        return _tile("ingest", "Ingest rate", "?", e(o.history.error), "bad")
    rates = o.history.value["produced"]
    last = rates[-1][1] if rates else 0.0
    return _tile("ingest", "Ingest rate", e(human_rate(last, "msgs")),
                 f"into Kafka over the last whole {e(human_duration(o.win.step_s))} step", "", round(last, 3))


def _dlq_tile(o: opsdata.Overview) -> str:
    if o.dead_letters.error:
        return _tile("dlq", "Dead letters", "?", e(o.dead_letters.error), "bad")
    d: opsdata.DeadLetters = o.dead_letters.value
    newest = d.latest[0].at if d.latest else None
    return _tile("dlq", "Dead letters", e(human_count(d.size)), f"retained on {e(d.topic)}" +
                 (f" · newest {time_tag(newest, o.win.now)}" if newest else ""), "warn" if d.size else "good", d.size)


def audit_verdict(findings: list[dict]) -> tuple[str, str]:
    """(state, sentence) of the latest audit."""
    if not findings:
        return "warn", "no audit has run yet"
    failed = sum(1 for f in findings if not f["ok"])
    at = when(findings[0]["run_at"])
    if failed:
        return "bad", f"FAIL: {failed} violation(s) of {len(findings)} checks in the audit of {at}"
    return "good", f"PASS: all {len(findings)} checks passed in the audit of {at}"


def _audit_tile(o: opsdata.Overview) -> str:
    if o.audit.error:
        return _tile("audit", "Retention audit", "?", e(o.audit.error), "bad")
    state, sentence = audit_verdict(o.audit.value)
    word = {"good": "PASS", "bad": "FAIL"}.get(state, "none")
    return _tile("audit", "Retention audit", word, e(sentence.split(": ", 1)[-1]), state, word)


def render_lag(o: opsdata.Overview) -> str:
    if o.lag.error:
        return _error(o.lag, f"the loader group's offsets on {o.topic}")
    parts: list[opsdata.PartitionLag] = o.lag.value
    biggest = max([p.lag for p in parts] + [1])
    rows = "".join(
        f"<tr data-partition='{p.partition}'><td>{p.partition}</td>"
        f"<td class='num' data-field='committed' data-value='{'' if p.committed is None else p.committed}'>"
        f"{e(human_count(p.committed)) if p.committed is not None else '<span class=muted>nothing</span>'}</td>"
        f"<td class='num' data-field='end' data-value='{p.high}'>{e(human_count(p.high))}</td>"
        f"<td class='num' data-field='lag' data-value='{p.lag}'>{e(human_count(p.lag))}</td>"
        f"<td class='bar'><span style='width:{100 * p.lag / biggest:.1f}%'></span></td></tr>"
        for p in sorted(parts, key=lambda p: p.partition))
    return ("<table class='grid' id='lag-now'><thead><tr><th>partition</th><th class='num'>committed</th>"
            "<th class='num'>end offset</th><th class='num'>lag (messages)</th><th></th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def render_audit(o: opsdata.Overview) -> str:
    if o.audit.error:
        return _error(o.audit, "the audit findings")
    findings = o.audit.value
    state, sentence = audit_verdict(findings)
    verdict = f"<p class='verdict {state}' id='verdict'>{e(sentence)}</p>"
    if not findings:
        return verdict + "<p class='empty'>no findings stored yet</p>"
    rows = "".join(
        f"<tr class='{'ok' if f['ok'] else 'fail'}'><td><span class='pill {'good' if f['ok'] else 'bad'}'>"
        f"{'OK' if f['ok'] else 'FAIL'}</span></td><td>{e(f['check'])}</td><td>{e(finding_where(f))}</td>"
        f"<td>{e(f['subject'])}</td><td class='num'>{e(finding_value(f['check'], f['subject'], f['value']))}</td>"
        f"<td class='num'>{e(finding_value(f['check'], f['subject'], f['limit']))}</td><td>{e(f['message'])}</td></tr>"
        for f in findings)
    return (verdict + "<table class='grid' id='audit'><thead><tr><th>result</th><th>check</th><th>where</th><th>subject</th>"
            f"<th class='num'>value</th><th class='num'>limit</th><th>message</th></tr></thead><tbody>{rows}</tbody></table>")


COUNT_COLUMNS = (("read", "read"), ("inserted", "inserted"), ("already_present", "already present"),
                 ("duplicates_in_batch", "duplicates"), ("dead_lettered", "dead-lettered"))


def _window_of(r: opsdata.Replay) -> str:
    conf = r.conf or {}
    if conf.get("offsets"):
        return "offsets " + e(json.dumps(conf["offsets"], sort_keys=True))
    if conf.get("start_time"):
        return f"{e(conf['start_time'])} → {e(conf.get('end_time') or 'now')}"
    return "<span class='muted'>—</span>"


def render_replays(o: opsdata.Overview, run_url: Callable[[str], str]) -> str:
    if o.replays.error:
        return _error(o.replays, "the replays")
    replays: list[opsdata.Replay] = o.replays.value
    if not replays:
        return "<p class='empty'>no replay has run yet</p>"
    rows = []
    for r in replays:
        link = (f"<a href='{e(run_url(r.run_id))}' target='_top'>{e(r.run_id)}</a>" if r.state is not None
                else f"{e(r.run_id)} <span class='muted'>(not in Airflow)</span>")
        state = r.state or "stored"
        duration = (human_duration((r.finished - r.started).total_seconds()) if r.started and r.finished else "")
        if r.stored:
            ranges = "".join(f"<li data-partition='{s.partition}'>{e(s.topic) if s.topic != r.topic else ''}"
                             f"<b>[{s.partition}]</b> {e(human_count(s.first))}…{e(human_count(s.last))} "
                             f"<span class='muted'>({e(human_count(s.messages))})</span></li>" for s in r.stored)
        elif r.planned:
            ranges = "".join(f"<li data-partition='{int(p['partition'])}'><b>[{int(p['partition'])}]</b> "
                             f"{e(human_count(p['start']))}…{e(human_count(max(p['start'], p['end'] - 1)))} "
                             f"<span class='muted'>planned</span></li>"
                             for p in sorted(r.planned, key=lambda p: int(p["partition"])))
        else:
            ranges = "<li class='muted'>nothing stored</li>"
        counts = r.counts or {}
        if counts.get("dry_run"):
            cells = f"<td colspan='5' class='muted'>dry run: {e(human_count(counts.get('planned', 0)))} planned</td>"
        else:
            cells = "".join(f"<td class='num' data-field='{key}' data-value='{e(counts.get(key, ''))}'>"
                            f"{e(human_count(counts[key])) if key in counts else '—'}</td>" for key, _ in COUNT_COLUMNS)
        rows.append(f"<tr data-run='{e(r.run_id)}'><td>{link}</td><td><span class='pill state-{e(state)}'>{e(state)}</span></td>"
                    f"<td>{time_tag(r.started)}</td><td>{time_tag(r.finished)}"
                    f"{f' <span class=muted>({e(duration)})</span>' if duration else ''}</td>"
                    f"<td>{e(r.topic or '')}<br><span class='small'>{_window_of(r)}</span></td>"
                    f"<td><ul class='ranges'>{''.join(ranges)}</ul></td>{cells}</tr>")
    head = "".join(f"<th class='num'>{e(label)}</th>" for _, label in COUNT_COLUMNS)
    return ("<table class='grid' id='replays'><thead><tr><th>run</th><th>state</th><th>started</th><th>finished</th>"
            f"<th>topic · window</th><th>partition: offsets stored</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def render_dead_letters(o: opsdata.Overview) -> str:
    if o.dead_letters.error:
        return _error(o.dead_letters, f"the dead-letter topic {o.dlq_topic}")
    d: opsdata.DeadLetters = o.dead_letters.value
    sizes = "".join(f"<tr data-partition='{p}'><td>{p}</td><td class='num' data-field='size' data-value='{high - low}'>"
                    f"{e(human_count(high - low))}</td><td class='num muted'>{e(human_count(low))}…{e(human_count(high))}</td></tr>"
                    for p, low, high in d.partitions)
    top = max([n for _, n in d.reasons] + [1])
    reasons = "".join(f"<tr><td>{e(reason)}</td><td class='num'>{e(human_count(n))}</td>"
                      f"<td class='bar'><span style='width:{100 * n / top:.1f}%'></span></td></tr>" for reason, n in d.reasons)
    latest = "".join(
        f"<tr><td>{time_tag(m.at)}</td><td>{e(m.reason)}</td><td class='msg'>{e(m.message)}</td>"
        f"<td>{e(m.source_topic)}[{e(m.source_partition)}]@{e(m.source_offset)}</td><td class='muted'>{m.partition}@{m.offset}</td></tr>"
        for m in d.latest)
    return (f"<p><b id='dlq-size' data-value='{d.size}'>{e(human_count(d.size))}</b> message(s) retained on {e(d.topic)}.</p>"
            "<div class='cols'><div><h3>Per partition</h3><table class='grid' id='dlq-partitions'><thead><tr><th>partition</th>"
            f"<th class='num'>messages</th><th class='num'>offsets</th></tr></thead><tbody>{sizes}</tbody></table></div>"
            f"<div><h3>Reasons among the newest {e(human_count(d.tail_read))}</h3>"
            + (f"<table class='grid' id='dlq-reasons'><tbody>{reasons}</tbody></table>" if reasons else
               "<p class='empty'>the dead-letter topic is empty</p>") + "</div></div>"
            + ("<h3>Newest dead letters</h3><table class='grid' id='dlq-latest'><thead><tr><th>dead-lettered</th><th>reason</th>"
               f"<th>message</th><th>from</th><th>DLQ offset</th></tr></thead><tbody>{latest}</tbody></table>" if latest else ""))


def chart_data(o: opsdata.Overview) -> dict:
    """What ops.js draws: x values in epoch seconds (UTC), one array per series."""
    data: dict[str, Any] = {"step_s": o.win.step_s, "hours": o.win.hours,
                            "range": [o.win.start_ms // 1000, o.win.now_ms // 1000]}  # every chart spans the window
    if o.history.error is None:
        h = o.history.value
        data["lag"] = {"x": [t // 1000 for t in h["boundaries_ms"]],
                       "series": {str(p): values for p, values in sorted(h["lag"].items())}}
        produced = dict(h["produced"])
    else:
        produced = {}
    stored = {}
    if o.freshness.error is None:
        f: opsdata.Freshness = o.freshness.value
        complete = [row for row in f.series if row[0] + o.win.step_s <= o.win.now.timestamp()]
        stored = {t: n / o.win.step_s for t, n, _, _ in complete}
        data["freshness"] = {"x": [r[0] for r in f.series], "p50": [r[2] for r in f.series], "p99": [r[3] for r in f.series]}
    xs = sorted(set(produced) | set(stored))
    data["ingest"] = {"x": xs, "kafka": [produced.get(x) for x in xs], "stored": [stored.get(x) for x in xs]}
    return data


def render_page(o: opsdata.Overview, root: str, run_url: Callable[[str], str]) -> str:
    static = f"{root}/static/"
    windows = "".join(f"<a href='?hours={h}' class='{'current' if h == o.win.hours else ''}'>{h} h</a>" for h in opsdata.WINDOWS)
    step = human_duration(o.win.step_s)
    return f"""{_head("QuackNet operations", static, [VENDOR["uplot_css"]])}
<body class='ops'>
{_nav(root, "operations", o.win.now)}
<main>
<section class='tiles'>
{_freshness_tiles(o)}{_lag_tiles(o)}{_ingest_tile(o)}{_dlq_tile(o)}{_audit_tile(o)}
</section>
<div class='window'>Charts over the last <span class='seg'>{windows}</span>
<span class='muted'>in {e(step)} steps; times in UTC</span></div>
<section class='cards'>
<article class='card'><h2>Loader lag per partition</h2>
<p class='hint'>Messages on {e(o.topic)} not yet stored by group {e(o.group)}: Kafka's end offset at each time (its time index)
minus what the loader had stored by then (load ledger); the last point is the committed lag now.</p>
{_error(o.history, "the lag history") if o.history.error else "<div class='chart' id='chart-lag'></div>"}</article>
<article class='card'><h2>Ingest rate</h2>
<p class='hint'>Messages appended to {e(o.topic)} per second (Kafka), and scans stored per second by the time the API
received them (ClickHouse).</p>
<div class='chart' id='chart-ingest'></div></article>
<article class='card'><h2>Time from 202 to queryable</h2>
<p class='hint'>loaded_at − received_at of the stored scans received in each step: median and 99th percentile.
A replay of recent data shows as a spike (its copies carry the replay's load time).</p>
{_error(o.freshness, "freshness") if o.freshness.error else "<div class='chart' id='chart-freshness'></div>"}</article>
<article class='card'><h2>Consumer lag now</h2>{render_lag(o)}</article>
</section>
<section class='card wide'><h2>Retention audit</h2>{render_audit(o)}</section>
<section class='card wide'><h2>Replays</h2>{render_replays(o, run_url)}</section>
<section class='card wide'><h2>Dead letters</h2>{render_dead_letters(o)}</section>
<footer class='muted'>Read in {e(human_duration(o.elapsed_s))} from Kafka, ClickHouse and Airflow ·
<a href='{e(root)}/api/overview?hours={o.win.hours}'>as JSON</a></footer>
</main>
<script type='application/json' id='ops-data'>{script_json(chart_data(o))}</script>
<script src='{e(static + VENDOR["uplot_js"])}'></script>
<script src='{e(static)}ops.js'></script>
</body></html>"""


def overview_json(o: opsdata.Overview) -> dict:
    def section(s: opsdata.Section, convert: Callable[[Any], Any] = lambda v: v) -> dict:
        return {"error": s.error} if s.error else {"value": json.loads(json.dumps(convert(s.value), default=_json_default))}

    return {
        "as_of": iso(o.win.now), "window": {"hours": o.win.hours, "step_s": o.win.step_s, "start": iso(o.win.start)},
        "topic": o.topic, "dlq_topic": o.dlq_topic, "group": o.group, "elapsed_s": round(o.elapsed_s, 4),
        "lag": section(o.lag, lambda v: [{**dataclasses.asdict(p), "lag": p.lag} for p in v]),
        "history": section(o.history),
        "freshness": section(o.freshness),
        "audit": section(o.audit),
        "replays": section(o.replays, lambda v: [r.as_dict() for r in v]),
        "dead_letters": section(o.dead_letters, lambda v: {**dataclasses.asdict(v), "size": v.size}),
    }


# -- the coverage map ------------------------------------------------------------------------------

def render_map(root: str, now: dt.datetime) -> str:
    static = f"{root}/static/"
    technologies = "".join(f"<option value='{e(t.value)}'>{e(t.value)}</option>" for t in Technology)
    config = {"api": f"{root}/api/coverage", "newest": f"{root}/api/coverage/newest",
              "countries": static + VENDOR["countries"], "max_area_deg2": coverage.MAX_AREA_DEG2,
              "max_window_days": coverage.MAX_WINDOW.days}
    return f"""{_head("QuackNet coverage map", static, [VENDOR["leaflet_css"]])}
<body class='mappage'>
{_nav(root, "map", now)}
<form class='filters' id='filters' onsubmit='return false'>
<label>Colour by <select name='metric' id='metric'><option value='rsrp'>median RSRP</option>
<option value='download'>median download speed</option></select></label>
<label>Technology <select name='technology' id='technology'><option value=''>all (best per cell)</option>{technologies}</select></label>
<label>Window <select name='preset' id='preset'><option value='1'>last hour</option><option value='24' selected>last 24 h</option>
<option value='168'>last 7 days</option><option value='744'>last 31 days</option>
<option value='custom'>from … to (UTC)</option></select></label>
<label class='custom'>from <input type='text' id='since' placeholder='2026-11-30T00:00:00Z' size='21'></label>
<label class='custom'>to <input type='text' id='until' placeholder='now' size='21'></label>
<button type='button' id='apply'>Show</button>
<span id='status' class='status' role='status'>loading…</span>
</form>
<div id='map'></div>
<div id='legend' class='legend'></div>
<script type='application/json' id='map-config'>{script_json(config)}</script>
<script src='{e(static + VENDOR["leaflet_js"])}'></script>
<script src='{e(static + VENDOR["topojson_js"])}'></script>
<script src='{e(static)}map.js'></script>
</body></html>"""


# -- static files ----------------------------------------------------------------------------------

def static_files() -> dict[str, Path]:
    """Every file the pages may load, by its path under static/ (nothing else is served)."""
    return {str(p.relative_to(STATIC)): p for p in STATIC.rglob("*") if p.is_file()
            and p.name not in ("SHA256SUMS", "PACKAGES")}


# -- the app ---------------------------------------------------------------------------------------

def default_run_url(ui_root: str = "/") -> Callable[[str], str]:
    def url(run_id: str) -> str:
        return f"{ui_root}dags/{opsdata.REPLAY_DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}"
    return url


def create_app(settings_factory: Callable[[], Settings], dependencies: Sequence = (),
               login_url: Callable[[str], str] | None = None,
               runs: Callable[[], list[opsdata.AirflowRun]] | None = None,
               run_url: Callable[[str], str] | None = None):
    """A FastAPI app: ``/`` (operations), ``/map`` (coverage), ``/api/overview``, ``/api/audit``,
    ``/api/replays``, ``/api/coverage`` (GeoJSON), ``/api/coverage/newest`` and ``/static/...``.

    ``settings_factory`` gives the settings per request (in Airflow, from its connections);
    ``dependencies`` guard every route (Airflow's login); ``login_url(next)`` is where a browser
    without a valid login is sent; ``runs`` lists the replay DAG's runs (Airflow's models)."""
    app = FastAPI(title="QuackNet operations", dependencies=[Depends(d) for d in dependencies])
    run_url = run_url or default_run_url()
    files = static_files()
    etags = {name: hashlib.sha256(path.read_bytes()).hexdigest()[:32] for name, path in files.items()}

    def root(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.exception_handler(HTTPException)
    async def to_login(request: Request, exc: HTTPException):
        """A browser asking for a page without a (valid) login goes to the login page, and back."""
        wants_page = request.method == "GET" and not request.url.path.startswith(f"{root(request)}/api/") \
            and "/static/" not in request.url.path
        if login_url is not None and wants_page and (exc.status_code == 401 or exc.detail == "Invalid JWT token"):
            return RedirectResponse(login_url(str(request.url)), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(QuackNetError)
    async def unavailable(request: Request, exc: QuackNetError):
        """ClickHouse or a connection not to be had: 503 while it may pass, else 500, with the reason."""
        return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=503 if exc.retriable else 500)

    def with_client(read: Callable):
        settings = settings_factory()
        client = warehouse.client(settings)
        try:
            return read(client, settings.clickhouse_database)
        finally:
            client.close()

    def overview(hours: int | None) -> opsdata.Overview:
        settings = settings_factory()
        return opsdata.gather(settings, lambda: (warehouse.client(settings), settings.clickhouse_database), runs, hours)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, hours: int | None = None) -> HTMLResponse:
        return HTMLResponse(render_page(overview(hours), root(request), run_url),
                            headers={"Cache-Control": "no-store"})

    @app.get("/map", response_class=HTMLResponse)
    def map_page(request: Request) -> HTMLResponse:
        return HTMLResponse(render_map(root(request), dt.datetime.now(dt.UTC)), headers={"Cache-Control": "no-store"})

    @app.get("/api/overview")
    def overview_api(hours: int | None = None) -> dict:
        return overview_json(overview(hours))

    @app.get("/api/audit")
    def audit() -> list[dict]:
        return json.loads(json.dumps(with_client(opsdata.latest_audit), default=_json_default))

    @app.get("/api/replays")
    def replays_api() -> list[dict]:
        known = runs() if runs is not None else []
        found = with_client(lambda c, db: opsdata.replays(c, db, known))
        return json.loads(json.dumps([r.as_dict() for r in found], default=_json_default))

    @app.get("/api/coverage")
    def coverage_api(bbox: str | None = None, since: str | None = None, until: str | None = None,
                     technology: str | None = None) -> Response:
        try:
            query = coverage.build_query(bbox, since, until, technology or None)
            found = with_client(lambda c, db: coverage.cells(c, db, query))
        except InvalidInput as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return Response(json.dumps(coverage.feature_collection(found, query), separators=(",", ":")),
                        media_type=coverage.MEDIA_TYPE)

    @app.get("/api/coverage/newest")
    def newest() -> dict:
        """Where and when the newest stored scan was: where the map opens."""
        rows = with_client(lambda c, db: c.query(
            "SELECT lat, lon, received_at FROM {db:Identifier}.scans_store ORDER BY received_at DESC LIMIT 1",
            parameters={"db": db}).result_rows)
        if not rows:
            return {"lat": None, "lon": None, "received_at": None}
        lat, lon, received = rows[0]
        return {"lat": lat, "lon": lon, "received_at": iso(received)}

    @app.get("/static/{name:path}")
    def static(name: str, request: Request) -> Response:
        path = files.get(name)
        if path is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        tag = f'"{etags[name]}"'
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers={"ETag": tag})
        return Response(path.read_bytes(), media_type=_TYPES.get(path.suffix, "application/octet-stream"),
                        headers={"ETag": tag, "Cache-Control": "private, max-age=3600"})

    return app
