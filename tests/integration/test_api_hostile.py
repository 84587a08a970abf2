"""The ingest API under gunicorn, as a hostile client meets it: every request answered with the
documented shape and a 2xx or 4xx, nothing truncated accepted, nothing invalid produced, slow
and incomplete requests cut off, metric labels bounded, rates exact across workers."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request

import pytest

from api.workers import READ_TIMEOUT_S
from devtools.samples import scan_payload
from quacknet.scan import decode
from tests.support.http import chunked, post_raw, raw_request
from tests.support.kafka import read_topic


def test_invalid_utf8_in_a_string_or_a_key_is_a_400_naming_its_path(served):
    settings, keys, _ = served
    cases = {b'{"device_id":"a\xff"}': "$.device_id", b'{"dev\xffice_id":"a"}': "$",
             json.dumps([scan_payload(), scan_payload()]).encode()[:-2] + b',"x\xfe":1}]': "$[1]"}
    for body, path in cases.items():
        status, answer, _ = raw_request(settings, post_raw(settings, keys["writer"], body))
        assert status == 400 and answer["error"] == "malformed_json", (body, answer)
        assert {"path": path, "type": "string_utf8", "message": "not valid UTF-8"} in answer["details"], answer


def test_a_lone_surrogate_is_named_by_its_path_and_the_valid_items_are_accepted(served):
    settings, keys, _ = served
    good = scan_payload("surrogate")
    body = json.dumps([good, {"scan_id": "\ud800"}, {**scan_payload("s2"), "carrier": "T\udc00"}]).encode()
    status, answer, _ = raw_request(settings, post_raw(settings, keys["writer"], body))
    assert status == 202, answer
    assert answer["accepted"] == [good["scan_id"]]
    paths = {d["path"] for r in answer["rejected"] for d in r["errors"]}
    assert "$[1].scan_id" in paths and "$[2].carrier" in paths
    assert answer["rejected"][0]["scan_id"] == "\\ud800"  # echoed escaped, not as a broken string
    single = json.dumps({**scan_payload("s3"), "carrier": "\ud83d"}).encode()
    status, answer, _ = raw_request(settings, post_raw(settings, keys["writer"], single))
    assert status == 422 and answer["details"][0] == {"path": "$.carrier", "type": "string_unicode",
                                                     "message": "not valid Unicode: a lone surrogate"}


@pytest.mark.parametrize("framing", [b"zz\r\n{}\r\n0\r\n\r\n", b"-1\r\n{}\r\n0\r\n\r\n", b"1\r\n{}\r\n0\r\n\r\n",
                                     b"2\r\n{}XX0\r\n\r\n", b"0x2\r\n{}\r\n0\r\n\r\n"],
                         ids=["size-not-hex", "size-negative", "size-shorter-than-data", "no-terminator", "size-0x-prefix"])
def test_malformed_chunked_framing_is_a_400_in_the_apis_shape(served, framing):
    settings, keys, _ = served
    status, answer, _ = raw_request(settings, post_raw(settings, keys["writer"], framing, chunked=True))
    assert status == 400 and answer is not None and set(answer) == {"error", "message", "details"}, (status, answer)


def test_a_chunked_body_over_the_limit_is_refused_whole_never_truncated(served):
    settings, keys, _ = served
    scan = scan_payload("padded")
    padded = json.dumps(scan).encode()[:-1] + b" " * (settings.api_max_body_bytes + 10) + b"garbage}"
    status, answer, _ = raw_request(settings, post_raw(settings, keys["writer"], chunked(padded), chunked=True))
    assert status == 413 and answer["error"] == "request_entity_too_large"
    exact = json.dumps(scan_payload("exact")).encode()
    status, _, _ = raw_request(settings, post_raw(settings, keys["writer"], chunked(exact), chunked=True, query="?wait=true"))
    assert status == 202  # a chunked body within the limit is fine
    ids = {decode(m.value()).device_id for m in read_topic(settings, settings.scans_topic)}
    assert "exact" in ids and "padded" not in ids


@pytest.mark.parametrize("request_bytes", [
    b"POST /v1/scans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"a\":",
    b"POST /v1/scans HTTP/1.1\r\nHost: x\r\nContent-Ty",
    b"POST /v1/scans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":",
], ids=["content-length-longer-than-body", "partial-headers", "unterminated-chunked"])
def test_an_incomplete_request_is_cut_off_promptly(served, request_bytes):
    settings, keys, _ = served
    request_bytes = request_bytes.replace(b"Host: x\r\n", f"Host: x\r\nX-API-Key: {keys['writer']}\r\n".encode())
    status, answer, elapsed = raw_request(settings, request_bytes, timeout=READ_TIMEOUT_S * 6)
    assert elapsed < READ_TIMEOUT_S + 5, elapsed
    assert status is None or (status in (400, 408) and answer is not None), (status, answer)


def test_a_client_trickling_a_request_is_cut_off_at_the_deadline(served):
    """Each byte arrives within the read timeout, so only the request's deadline (8 s here) stops it."""
    import select
    import socket

    settings, keys, _ = served
    request = post_raw(settings, keys["writer"], json.dumps(scan_payload("trickle")).encode())
    started, answer = time.monotonic(), None
    with socket.create_connection(("127.0.0.1", settings.api_port), timeout=30) as sock:
        sent = 0
        try:
            while sent < len(request) and time.monotonic() - started < 40:
                sock.sendall(request[sent:sent + 1])
                sent += 1
                readable, _, _ = select.select([sock], [], [], 2.0)  # the server answered or closed
                if readable:
                    answer = sock.recv(65536)
                    break
        except (BrokenPipeError, ConnectionResetError):
            answer = b""
    elapsed = time.monotonic() - started
    assert elapsed < settings.api_request_deadline_s + 6, elapsed  # not the 40 s the trickle would take
    assert sent < len(request) and answer is not None
    assert answer == b"" or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 408")), answer[:100]


def test_made_up_methods_do_not_add_metric_series(served):
    settings, _, _ = served
    for method in ("QNTESTA", "QNTESTB", "BREW"):
        raw_request(settings, f"{method} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.api_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    methods = set(re.findall(r'quacknet_api_requests_total\{[^}]*method="([^"]+)"', text))
    assert "QNTESTA" not in methods and "BREW" not in methods and "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


@pytest.mark.parametrize("key_name,rate", [("one", 1), ("three", 3)])
def test_a_keys_rate_is_exact_across_the_workers(served, key_name, rate):
    settings, keys, _ = served
    body = json.dumps(scan_payload("rate")).encode()
    time.sleep(1.05 - time.time() % 1)  # start right after a window opens
    results: list[int] = []

    def fire():
        status, _, _ = raw_request(settings, post_raw(settings, keys[key_name], body))
        results.append(status)

    threads = [threading.Thread(target=fire) for _ in range(12)]  # many connections: both workers serve some
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert time.time() % 1 < 0.9, "the burst spilled into the next window; the machine is too slow for this check"
    assert sorted(results) == sorted([202] * rate + [429] * (12 - rate)), results
