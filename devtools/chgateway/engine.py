"""The chDB engine behind the gateway: one engine per process, one connection per HTTP session.

chDB lets any number of connections share the process's one engine and run in
parallel; each keeps its own ``USE``/``SET`` state, which is exactly what a
ClickHouse HTTP session is. A request without ``session_id`` gets a fresh
connection (0.1 ms) that is closed afterwards, so nothing leaks between callers.

Per-request URL settings (``insert_deduplication_token=...``) must apply to that
request only, as on a real server. A session connection therefore remembers which
settings the HTTP layer applied and what they were before, and reconciles on every
request: steady-state clients that send the same settings cost no extra queries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import chdb

from devtools.chgateway import lockdown
from devtools.chgateway.policy import Policy, Statement
from devtools.chgateway.protocol import GatewayError, error_code
from quacknet.logs import get_logger

log = get_logger(__name__)


def _quote(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_name(name: str) -> str:
    if not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise GatewayError(115, f"Setting {name!r} is not a valid identifier")
    return name


@dataclass
class Summary:
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0
    elapsed_s: float = 0.0

    def header(self) -> str:
        return json.dumps({
            "read_rows": str(self.read_rows), "read_bytes": str(self.read_bytes),
            "written_rows": str(self.written_rows), "written_bytes": str(self.written_bytes),
            "total_rows_to_read": str(self.read_rows), "result_rows": str(self.result_rows),
            "result_bytes": str(self.result_bytes), "elapsed_ns": str(int(self.elapsed_s * 1e9)),
        })


def _engine_error(exc: Exception) -> GatewayError:
    message = str(exc)
    for prefix in ("Streaming query failed: ", "Streaming insert append failed: ", "Streaming insert finish failed: "):
        message = message.removeprefix(prefix)
    return GatewayError(error_code(message), message)


class Session:
    def __init__(self, conn, timeout_s: float, policy: Policy):
        self.conn = conn
        self.policy = policy
        self.lock = threading.Lock()
        self.timeout_s = timeout_s
        self.last_used = time.monotonic()
        self.database: str | None = None
        self._applied: dict[str, str] = {}
        self._base: dict[str, tuple[str, bool]] = {}

    def _run(self, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None):
        try:
            return self.conn.query(sql, fmt, params=params or {})
        except Exception as exc:
            raise _engine_error(exc) from None

    def prepare(self, settings: dict[str, str], database: str | None) -> None:
        """Make this connection's state: session state + exactly these request settings."""
        if database and database != self.database:
            self._run(f"USE `{database.replace('`', '')}`")
            self.database = database
        for name in [k for k in self._applied if k not in settings]:
            self._restore(name)
        changes = {k: v for k, v in settings.items() if self._applied.get(k) != v}
        unknown = [_check_name(k) for k in changes if k not in self._base]
        if unknown:
            names = ", ".join(_quote(k) for k in unknown)
            rows = self._run(f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})", "JSONEachRow")
            for line in rows.bytes().splitlines():
                row = json.loads(line)
                self._base[row["name"]] = (row["value"], bool(row["changed"]))
            for k in unknown:
                self._base.setdefault(k, ("", False))
        for key, value in changes.items():
            try:
                self._run(f"SET {key} = {_quote(value)}")
            except GatewayError:
                if key not in self._applied:
                    self._base.pop(key, None)
                raise
            self._applied[key] = value

    def _restore(self, name: str) -> None:
        value, changed = self._base.pop(name, ("", False))
        self._applied.pop(name, None)
        literal = value if value.startswith("'") and value.endswith("'") and len(value) > 1 else _quote(value)
        self._run(f"SET {name} = {literal}" if changed else f"SET {name} = DEFAULT")

    def _raw(self, sql: str, fmt: str, params: dict[str, str]) -> bytes:
        return self._run(sql, fmt or "TabSeparated", params).bytes()

    def check(self, sql: str, readonly: bool) -> Statement:
        """Refuse what the statement policy refuses (a GatewayError), before it runs."""
        return self.policy.check(self._raw, sql, readonly)

    def split_inline_insert(self, sql: str, statement: Statement) -> tuple[str, str, bytes]:
        return self.policy.split_inline_insert(self._raw, sql, statement)

    def query(self, sql: str, fmt: str, params: dict[str, str]) -> tuple[bytes, Summary]:
        started = time.perf_counter()
        res = self._run(sql, fmt, params)
        body = res.bytes()
        summary = Summary(res.rows_read(), res.bytes_read(), result_bytes=len(body), elapsed_s=time.perf_counter() - started)
        try:
            summary.written_rows, summary.written_bytes = res.rows_written(), res.bytes_written()
        except Exception:
            pass
        return body, summary

    def stream(self, sql: str, fmt: str, params: dict[str, str]) -> Iterator[bytes]:
        """Start the query and fetch its first chunk now, so that analysis errors still get an
        error status (chDB reports them on the first fetch); yield the rest lazily."""
        try:
            result = self.conn.send_query(sql, fmt, params=params)
            first = result.fetch()
        except Exception as exc:
            raise _engine_error(exc) from None

        def chunks() -> Iterator[bytes]:
            try:
                if first is not None:
                    yield first.bytes()
                for chunk in result:
                    yield chunk.bytes()
            except Exception as exc:
                raise _engine_error(exc) from None
            finally:
                result.close()

        return chunks()

    def insert(self, statement: str, fmt: str, data: Iterable[bytes]) -> Summary:
        started = time.perf_counter()
        try:
            inserter = self.conn.send_insert(statement, fmt)
        except Exception as exc:
            raise _engine_error(exc) from None
        with inserter:
            try:
                for chunk in data:
                    if chunk:
                        inserter.append(chunk)
                done = inserter.finish()
            except GatewayError:
                raise
            except Exception as exc:
                raise _engine_error(exc) from None
        return Summary(done.rows_written, done.bytes_written, done.rows_written, done.bytes_written,
                       elapsed_s=time.perf_counter() - started)

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


class Engine:
    def __init__(self, path: str, max_sessions: int, default_timeout_s: float, config_file: str):
        self.path = path
        # The first connection starts the engine with the lockdown config (lockdown.py) and holds
        # it, and its data-dir lock, for the process lifetime; later connections share that engine.
        self._root = chdb.connect(f"{path}?config-file={config_file}")
        lockdown.plain_default(lambda sql: self._root.query(sql, "TabSeparated").bytes().decode())
        self.policy = Policy()
        self.version, self.timezone = self._root.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._max_sessions = max_sessions
        self._default_timeout_s = default_timeout_s
        self._closed = threading.Event()
        threading.Thread(target=self._reap_loop, name="session-reaper", daemon=True).start()

    def _connect(self, timeout_s: float) -> Session:
        return Session(chdb.connect(self.path), timeout_s, self.policy)

    @contextmanager
    def session(self, session_id: str | None, timeout_s: float | None, check: bool):
        """A locked session for one request (a fresh throwaway one without session_id)."""
        if session_id is None:
            sess = self._connect(0)
            try:
                yield sess
            finally:
                sess.close()
            return
        with self._lock:
            sess = self._sessions.get(session_id)
            if sess is None:
                if check:
                    raise GatewayError(372, f"Session not found: {session_id}")
                if len(self._sessions) >= self._max_sessions:
                    raise GatewayError(202, f"Too many sessions (max {self._max_sessions})", status=503)
                sess = self._sessions[session_id] = self._connect(timeout_s or self._default_timeout_s)
            elif timeout_s:
                sess.timeout_s = timeout_s
        if not sess.lock.acquire(blocking=False):
            raise GatewayError(373, f"Session {session_id} is locked by a concurrent client.")
        try:
            yield sess
        finally:
            sess.last_used = time.monotonic()
            sess.lock.release()

    def _reap_loop(self) -> None:
        while not self._closed.wait(1.0):
            now = time.monotonic()
            with self._lock:
                idle = [k for k, s in self._sessions.items() if now - s.last_used > s.timeout_s and not s.lock.locked()]
                expired = [self._sessions.pop(k) for k in idle]
            for sess in expired:
                sess.close()

    def ping(self) -> None:
        self._root.query("SELECT 1", "TabSeparated")

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for sess in sessions:
            sess.close()
        self._root.close()
