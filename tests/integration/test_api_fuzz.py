"""Generated hostile input against the real API under gunicorn: thousands of bodies and raw HTTP
framings. Whatever arrives, the answer is a 2xx or 4xx in the documented shape, and what reaches
Kafka is exactly the scans the API accepted, each a valid scan."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.samples import scan_payload
from quacknet.scan import decode
from tests.support.http import raw_request
from tests.support.kafka import read_topic
from tests.support.waiting import wait_for

NOW = dt.datetime.now(dt.UTC)  # one clock for the whole run: a generator must draw the same bytes twice
BASE = scan_payload("fuzz", rng=random.Random(1), now=NOW)
FIELDS = sorted(BASE) + ["received_at", "rsrpp", "", "scan_id\u0000"]
ANSWERS = {202, 400, 413, 415, 422}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=40)
    | st.sampled_from(["", " ", "262", "01", "LTE", "WIFI", "\ud800", "T\udfff", "2026-11-26T12:00:00Z", "NaN", "1e999"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def scan_items(draw):
    item = scan_payload(f"fz{draw(st.integers(0, 9))}", rng=random.Random(draw(st.integers(0, 2**32))), now=NOW)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        action = draw(st.sampled_from(["replace", "delete", "keep"]))
        if action == "replace":
            item[name] = draw(json_values)
        elif action == "delete":
            item.pop(name, None)
    return item


@st.composite
def bodies(draw):
    items = draw(st.lists(scan_items(), min_size=1, max_size=4))
    doc = items if draw(st.booleans()) or len(items) > 1 else items[0]
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    corruption = draw(st.sampled_from(["none", "none", "none", "insert", "truncate", "invalid_utf8", "nest", "bom"]))
    at = draw(st.integers(0, max(0, len(raw) - 1)))
    if corruption == "insert":
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    elif corruption == "truncate":
        raw = raw[:at]
    elif corruption == "invalid_utf8":
        raw = raw.replace(b'"', b'"\xc3\x28', 1) if draw(st.booleans()) else raw[:at] + b"\xff\xfe" + raw[at:]
    elif corruption == "nest":
        depth = draw(st.integers(1, 3000))
        raw = b"[" * depth + raw + b"]" * depth
    elif corruption == "bom":
        raw = b"\xef\xbb\xbf" + raw
    return raw


@st.composite
def framings(draw, key: str):
    body = json.dumps(scan_payload(f"fr{draw(st.integers(0, 9))}", rng=random.Random(draw(st.integers(0, 2**32))), now=NOW)).encode()
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "QNFUZZ", "post", "P OST"]))
    path = draw(st.sampled_from(["/v1/scans", "/v1/scans?wait=maybe", "/v1/scans?wait=true", "/v1//scans", "/../v1/scans",
                                 "/v1/scans#x", "*", "/" + "a" * 5000]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/9.9", "HTTP/1.1 extra"]))
    headers = [f"X-API-Key: {key}" if draw(st.booleans()) else "X-API-Key: qn_wrong", "Host: fuzz"]
    headers.append(draw(st.sampled_from(["Content-Type: application/json", "Content-Type: text/plain",
                                         "Content-Type: application/json; charset=latin-1", ""])))
    headers += draw(st.lists(st.sampled_from(["X-Odd: \x7f", "Bad Header", "X-Long: " + "b" * 9000, ": empty",
                                              "Transfer-Encoding: gzip", "Content-Length: -1", "Expect: 100-continue"]),
                             max_size=2))
    mode = draw(st.sampled_from(["length", "length-short", "chunked", "chunked-broken", "none"]))
    if mode == "length":
        headers.append(f"Content-Length: {len(body)}")
    elif mode == "length-short":
        headers.append(f"Content-Length: {draw(st.integers(0, len(body) - 1))}")
    elif mode.startswith("chunked"):
        headers.append("Transfer-Encoding: chunked")
        cut = draw(st.integers(1, len(body) - 1))
        parts = [body[:cut], body[cut:]]
        sizes = [len(p) for p in parts]
        if mode == "chunked-broken":
            sizes[draw(st.integers(0, 1))] += draw(st.sampled_from([-1, 1, 7]))
        body = b"".join(b"%x\r\n%s\r\n" % (size, part) for size, part in zip(sizes, parts)) + b"0\r\n\r\n"
    head = f"{method} {path} {version}\r\n" + "".join(h + "\r\n" for h in headers if h) + "\r\n"
    return head.encode("latin-1") + body


def test_generated_bodies_and_framings_get_no_5xx_and_only_accepted_valid_scans_reach_kafka(served):
    api_settings, keys, _ = served
    accepted: set[str] = set()
    conn = [http.client.HTTPConnection("127.0.0.1", api_settings.api_port, timeout=30)]

    def post(raw: bytes) -> tuple[int, dict]:
        for _ in range(2):  # a connection the server closed after an error is replaced once
            try:
                conn[0].request("POST", "/v1/scans", body=raw, headers={
                    "X-API-Key": keys["writer"], "Content-Type": "application/json"})
                resp = conn[0].getresponse()
                return resp.status, json.loads(resp.read())
            except (http.client.HTTPException, ConnectionError):
                conn[0].close()
                conn[0] = http.client.HTTPConnection("127.0.0.1", api_settings.api_port, timeout=30)
        raise AssertionError("the API closed two connections in a row")

    @settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(bodies())
    def bodies_are_answered(raw):
        status, answer = post(raw)
        assert status in ANSWERS, (status, answer, raw[:300])
        assert isinstance(answer.get("error" if status != 202 else "accepted"), (str, list)), answer
        if status == 202:
            accepted.update(answer["accepted"])

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(framings(keys["writer"]))
    def framings_are_answered(raw):
        status, answer, elapsed = raw_request(api_settings, raw, timeout=20, half_close=True)
        assert elapsed < 15, raw[:300]
        if status is not None:  # a connection closed without an answer is allowed for unparseable bytes
            assert status < 500 and answer is not None and ("error" in answer or "accepted" in answer or "status" in answer), (
                status, answer, raw[:300])
            if status == 202:
                accepted.update(answer["accepted"])

    bodies_are_answered()
    framings_are_answered()
    conn[0].close()
    assert len(accepted) > 200  # the generators reach the valid space too

    def on_kafka() -> list:
        return read_topic(api_settings, api_settings.scans_topic)

    wait_for(lambda: len(on_kafka()) >= len(accepted), 60, "every accepted scan on the topic")
    stored = [decode(m.value()) for m in on_kafka()]  # pydantic's verdict: each one a valid scan
    assert {str(s.scan_id) for s in stored} == accepted
