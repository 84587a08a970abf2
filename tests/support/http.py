"""Raw HTTP for tests that must send what a well-behaved client library never would."""

from __future__ import annotations

import json
import re
import socket
import time


def raw_request(settings, data: bytes, timeout: float = 30.0, half_close: bool = False) -> tuple[int | None, dict | None, float]:
    """Send bytes as they are; (status, JSON body or None, seconds until the server answered or closed).
    ``half_close`` ends the sending side after the bytes, as a client that has nothing more to say."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", settings.api_port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = b""
        try:
            while chunk := sock.recv(65536):
                response = _without_interim(response + chunk)
                if _complete(response):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    elapsed = time.monotonic() - started
    if not _complete(response):  # closed (or reset: gunicorn does no lingering close) before a whole answer
        return None, None, elapsed
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    body = body[:int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))]  # a pipelined second answer may follow
    try:
        return status, json.loads(body), elapsed
    except ValueError:
        return status, None, elapsed


def _without_interim(response: bytes) -> bytes:
    """Drop interim answers (``100 Continue``): the test judges the final one."""
    while response.startswith(b"HTTP/1.1 1") and b"\r\n\r\n" in response:
        response = response.split(b"\r\n\r\n", 1)[1]
    return response


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return bool(sep) and length is not None and len(body) >= int(length.group(1))


def post_raw(settings, key: str, body: bytes, extra: str = "", chunked: bool = False, query: str = "") -> bytes:
    head = (f"POST /v1/scans{query} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\n{extra}")
    if chunked:
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + body
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def chunked(body: bytes, size: int = 1 << 16) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)) + b"0\r\n\r\n"


