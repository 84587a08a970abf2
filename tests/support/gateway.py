"""Raw HTTP against the local ClickHouse gateway: what curl or a hostile client sends, byte for
byte, rather than what clickhouse-connect would make of it."""

from __future__ import annotations

import base64
import http.client
import re
import urllib.parse
from dataclasses import dataclass

import psutil
import pytest

from devtools.services import CLICKHOUSE
from devtools.settings import DevSettings
from devtools.supervisor import Supervisor


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> int | None:
        """ClickHouse's error code (X-ClickHouse-Exception-Code), None on success."""
        value = self.headers.get("x-clickhouse-exception-code")
        return int(value) if value else None

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def login(settings: DevSettings) -> dict[str, str]:
    return basic_auth(settings.clickhouse_user, settings.clickhouse_password.get_secret_value())


def request(settings: DevSettings, method: str = "POST", path: str = "/", params: dict | None = None, body: bytes = b"",
            headers: dict | None = None, auth: bool = True, timeout: float = 60) -> Reply:
    url = path + ("?" + urllib.parse.urlencode(params) if params else "")
    conn = http.client.HTTPConnection(settings.clickhouse_host, settings.clickhouse_port, timeout=timeout)
    try:
        conn.request(method, url, body=body or None, headers={**(login(settings) if auth else {}), **(headers or {})})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def sql(settings: DevSettings, statement: str, **kw) -> Reply:
    """POST one statement as the body (how curl --data-binary sends it)."""
    return request(settings, body=statement.encode(), **kw)


def value(settings: DevSettings, statement: str) -> str:
    reply = sql(settings, statement)
    assert reply.status == 200, reply.text
    return reply.text.strip()


def require_local_gateway(settings: DevSettings) -> None:
    """These tests are about the local gateway, which the session's stack starts; pointed at another
    server (QUACKNET_CLICKHOUSE_URL) they fail loudly rather than pass without testing anything."""
    reply = sql(settings, "SELECT 1")
    if reply.headers.get("x-clickhouse-server-display-name") != "quacknet-chgateway":
        pytest.fail(f"{settings.clickhouse_url} is not the local chDB gateway these tests are about; "
                    "run them against the stack `make test` starts")


def worker(settings: DevSettings) -> psutil.Process:
    """The gateway's gunicorn worker (the process that holds the engine)."""
    master = Supervisor(settings).process(CLICKHOUSE)
    assert master is not None, "the gateway was not started by this stack's supervisor"
    [child] = master.children()
    return child


def peak_rss_reset(proc: psutil.Process) -> None:
    with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
        f.write("5")  # Linux: reset the peak resident set size (VmHWM) to the current one


def peak_rss(proc: psutil.Process) -> int:
    with open(f"/proc/{proc.pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024
