"""Bodies and requests a client did not finish, or made too big: a compressed body that is cut short
or corrupt stores nothing, a small compressed body cannot balloon in memory, the URL and the
decompressed body are bounded, and a half-sent request does not hold a connection. Real gateway
(gunicorn with api.workers.ThreadWorker), real engine."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from urllib.parse import quote

import lz4.frame
import pytest
import zstandard

from api.workers import READ_TIMEOUT_S
from devtools.services import CLICKHOUSE
from devtools.settings import DevSettings
from devtools.supervisor import Supervisor, free_port
from tests.support.gateway import login, peak_rss, peak_rss_reset, request, require_local_gateway, value, worker

MIB = 1 << 20

COMPRESS = {
    "lz4": lz4.frame.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}
DECODER_CODES = {"lz4": 618, "zstd": 561, "gzip": 354, "deflate": 354}  # ClickHouse's codes for each decoder


@pytest.fixture
def gw(stack, database) -> DevSettings:
    require_local_gateway(stack)
    value(stack, f"CREATE TABLE {database}.t (k UInt64) ENGINE = MergeTree ORDER BY k")
    return stack


def _rows(start: int, n: int) -> bytes:
    return b"".join(b"%d\n" % i for i in range(start, start + n))


def _insert(settings, database, body: bytes, encoding: str):
    return request(settings, params={"query": f"INSERT INTO {database}.t FORMAT CSV"}, body=body,
                   headers={"Content-Encoding": encoding})


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_two_whole_frames_insert_every_row(gw, database, encoding):
    """The control: the same bodies as below, uncut, store all 2,000 rows."""
    body = COMPRESS[encoding](_rows(0, 1000)) + COMPRESS[encoding](_rows(1000, 1000))
    assert _insert(gw, database, body, encoding).status == 200
    assert value(gw, f"SELECT count(), uniqExact(k) FROM {database}.t") == "2000\t2000"


@pytest.mark.parametrize("cut", ["half-of-frame-2", "frame-2-header-only", "last-byte-missing"])
@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_a_truncated_compressed_insert_stores_nothing(gw, database, encoding, cut):
    first, second = COMPRESS[encoding](_rows(0, 1000)), COMPRESS[encoding](_rows(1000, 1000))
    body = first + {"half-of-frame-2": second[: len(second) // 2], "frame-2-header-only": second[:4],
                    "last-byte-missing": second[:-1]}[cut]
    reply = _insert(gw, database, body, encoding)
    assert (reply.status, reply.code) == (400, DECODER_CODES[encoding]), reply.text
    assert value(gw, f"SELECT count() FROM {database}.t") == "0"


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_a_corrupt_compressed_insert_stores_nothing(gw, database, encoding):
    body = COMPRESS[encoding](_rows(0, 1000)) + b"this is not a compressed frame" * 20
    reply = _insert(gw, database, body, encoding)
    assert (reply.status, reply.code) == (400, DECODER_CODES[encoding]), reply.text
    assert value(gw, f"SELECT count() FROM {database}.t") == "0"


def test_a_truncated_zstd_statement_is_an_error_not_a_shorter_statement(gw, database):
    whole = zstandard.ZstdCompressor().compress(b"SELECT 42")
    assert request(gw, body=whole, headers={"Content-Encoding": "zstd"}).body == b"42\n"
    reply = request(gw, body=whole[:-3], headers={"Content-Encoding": "zstd"})
    assert (reply.status, reply.code) == (400, 561), reply.text
    statement = zstandard.ZstdCompressor().compress(f"INSERT INTO {database}.t FORMAT CSV\n".encode() + _rows(0, 1000))
    reply = request(gw, body=statement[: len(statement) // 2], headers={"Content-Encoding": "zstd"})
    assert (reply.status, reply.code) == (400, 561), reply.text
    assert value(gw, f"SELECT count() FROM {database}.t") == "0"


def test_a_small_body_that_inflates_to_100_mib_is_refused_without_inflating_in_memory(gw):
    bomb = gzip.compress(b"SELECT 1" + b" " * (100 * MIB), compresslevel=9)
    assert len(bomb) < 200_000
    proc = worker(gw)
    before = proc.memory_info().rss
    peak_rss_reset(proc)
    started = time.monotonic()
    reply = request(gw, body=bomb, headers={"Content-Encoding": "gzip"})
    assert (reply.status, reply.code) == (413, 229), reply.text
    assert "QUACKNET_GATEWAY_MAX_QUERY_BYTES" in reply.text
    assert time.monotonic() - started < 10
    assert peak_rss(proc) - before < 48 * MIB  # the statement limit (16 MiB) and one decoder step, not 100 MiB


@pytest.fixture
def small_gateway(tmp_path):
    """A gateway of its own whose decompressed-body bound is 4 MiB."""
    settings = DevSettings(home=tmp_path / "qn", clickhouse_url=f"http://127.0.0.1:{free_port()}", log_json=True,
                           gateway_max_body_bytes=4 * MIB)
    sup = Supervisor(settings)
    sup.start(CLICKHOUSE)
    value(settings, "CREATE TABLE default.t (k UInt64) ENGINE = MergeTree ORDER BY k")
    yield settings
    sup.stop(CLICKHOUSE, kill=True)


def test_the_decompressed_body_is_bounded(small_gateway):
    big = _rows(0, 1_000_000)  # 6.9 MB of CSV from a ~2 MB gzip body
    reply = _insert(small_gateway, "default", gzip.compress(big), "gzip")
    assert (reply.status, reply.code) == (413, 290), reply.text
    assert "QUACKNET_GATEWAY_MAX_BODY_BYTES" in reply.text
    assert value(small_gateway, "SELECT count() FROM default.t") == "0"
    assert _insert(small_gateway, "default", gzip.compress(_rows(0, 100_000)), "gzip").status == 200  # under the bound
    assert value(small_gateway, "SELECT count() FROM default.t") == "100000"


def _raw(settings: DevSettings, payload: bytes, timeout: float) -> tuple[bytes, float]:
    """Send bytes (in the background: the server may answer before reading them all) and read until
    the server closes; (what came back, seconds until then)."""
    sock = socket.create_connection((settings.clickhouse_host, settings.clickhouse_port), timeout=timeout)

    def send():
        try:
            sock.sendall(payload)
        except OSError:
            pass

    started = time.monotonic()
    threading.Thread(target=send, daemon=True).start()
    return _read_until_closed(sock), time.monotonic() - started


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or the socket times out); closes the socket."""
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except OSError:
        pass
    finally:
        sock.close()
    return got


def _auth_params(settings: DevSettings) -> bytes:
    return f"user={quote(settings.clickhouse_user)}&password={quote(settings.clickhouse_password.get_secret_value())}".encode()


def _get(target: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def test_the_request_line_is_bounded_at_clickhouses_1_mib(gw):
    """clickhouse-connect puts a command's parameters in the URL; ClickHouse takes up to 1 MiB there."""
    n = MIB - 1000
    fits = b"/?" + _auth_params(gw) + b"&query=SELECT+length({s:String})&param_s=" + b"x" * n
    reply, _ = _raw(gw, _get(fits), timeout=60)
    assert reply.startswith(b"HTTP/1.1 200") and b"\r\n%d\n" % n in reply, reply[:300]
    for size in (MIB + 10, 20 * MIB):
        reply, seconds = _raw(gw, _get(b"/?" + _auth_params(gw) + b"&param_s=" + b"x" * size), timeout=60)
        assert reply.startswith(b"HTTP/1.1 414") and b"Request Line is too large" in reply, reply[:300]
        assert seconds < 5, f"a {size}-byte request line took {seconds:.1f}s to refuse"
    assert value(gw, "SELECT 1") == "1"


def _stalled(settings: DevSettings, payload: bytes, out: dict, name: str) -> None:
    """A request that never completes: how long until the server gives up on it, and what it said."""
    sock = socket.create_connection((settings.clickhouse_host, settings.clickhouse_port), timeout=READ_TIMEOUT_S * 6)
    started = time.monotonic()
    sock.sendall(payload)
    out[name] = (_read_until_closed(sock), time.monotonic() - started)


def test_a_request_the_client_never_finishes_does_not_hold_a_connection(gw, database):
    auth = "".join(f"{k}: {v}\r\n" for k, v in login(gw).items()).encode()
    path = f"/?query=INSERT+INTO+{database}.t+FORMAT+CSV".encode()
    cases = {
        "content-length larger than the body": b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth
                                               + b"Content-Length: 1000\r\n\r\n1\n2\n",
        "partial headers": b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Le",
        "unterminated chunked body": b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth
                                     + b"Transfer-Encoding: chunked\r\n\r\n4\r\n1\n2\n\r\n",
    }
    out: dict = {}
    threads = [threading.Thread(target=_stalled, args=(gw, payload, out, name)) for name, payload in cases.items()]
    for th in threads:
        th.start()
    time.sleep(1)
    assert value(gw, "SELECT 1") == "1"  # the gateway serves others meanwhile
    for th in threads:
        th.join()
    for name, (reply, seconds) in out.items():
        assert seconds < READ_TIMEOUT_S + 5, f"{name}: held for {seconds:.0f}s"
        assert reply == b"" or reply.startswith((b"HTTP/1.1 408", b"HTTP/1.1 400")), (name, reply[:300])
    assert out["content-length larger than the body"][0].startswith(b"HTTP/1.1 408")
    assert value(gw, f"SELECT count() FROM {database}.t") == "0"  # the rows that did arrive were not stored
