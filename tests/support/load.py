"""Phones posting scans through the real API while a test breaks something: every response is
recorded (time, status, Retry-After), and every scan the API accepted with a 202, by id."""

from __future__ import annotations

import collections
import http.client
import json
import socket
import threading
import time

from devtools.samples import scan_payload


class ApiLoad:
    """Batches of ``batch`` scans at ``rate`` scans/s from one thread. A request that is not answered
    202 is sent again with the same scans (a phone's retry), after the Retry-After it was given (at
    most ``max_wait_s``) or a short pause; nothing is given up, so every scan ends up accepted."""

    def __init__(self, host: str, port: int, key: str, prefix: str, rate: float = 200, batch: int = 10,
                 max_wait_s: float = 2.0):
        self.host, self.port, self.key, self.prefix = host, port, key, prefix
        self.interval, self.batch, self.max_wait_s = batch / rate, batch, max_wait_s
        self.responses: list[tuple[float, int, str | None]] = []  # (monotonic time, status or 0, Retry-After)
        self.accepted: dict[str, float] = {}
        self._conn: http.client.HTTPConnection | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-load", daemon=True)

    def start(self) -> ApiLoad:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 60) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the load thread did not finish its last request"
        if self._conn is not None:
            self._conn.close()

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> collections.Counter:
        return collections.Counter(status for t, status, _ in self.responses if since <= t < until)

    def refusals_without_retry_after(self) -> list[tuple[float, int, str | None]]:
        """Responses that were neither a 202 nor a 503 carrying Retry-After."""
        return [r for r in self.responses if r[1] != 202 and not (r[1] == 503 and r[2])]

    def _run(self) -> None:
        n, start = 0, time.monotonic()
        while not self._stop.is_set():
            scans = [scan_payload(f"{self.prefix}-{(n * self.batch + i) % 40}") for i in range(self.batch)]
            body = json.dumps(scans).encode()
            while True:  # the same scans until the API takes them
                status, retry_after, answer = self._post(body)
                self.responses.append((time.monotonic(), status, retry_after))
                if status == 202:
                    now = time.monotonic()
                    for sid in answer["accepted"]:
                        self.accepted[sid] = now
                    assert not answer.get("rejected"), answer  # the samples are valid scans
                    break
                time.sleep(min(float(retry_after), self.max_wait_s) if retry_after else 0.2)
            n += 1
            time.sleep(max(0.0, start + n * self.interval - time.monotonic()))

    def _post(self, body: bytes) -> tuple[int, str | None, dict]:
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self._conn.connect()
                self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn.request("POST", "/v1/scans", body=body,
                               headers={"X-API-Key": self.key, "Content-Type": "application/json"})
            resp = self._conn.getresponse()
            data = resp.read()
            return resp.status, resp.getheader("Retry-After"), json.loads(data or b"{}")
        except (OSError, http.client.HTTPException, ValueError):
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return 0, None, {}
