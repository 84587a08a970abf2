"""The local ClickHouse gateway: ClickHouse's HTTP interface in front of the chDB engine.

Serves the part of the interface an unmodified clickhouse-connect client uses
(queries in URL or body, ``param_*``, per-request settings, sessions, Native and
text formats, compressed and streamed inserts, ``/ping``, errors with
``X-ClickHouse-Exception-Code``). It runs as a single gunicorn gthread worker
because only one process may open a chDB data dir; gunicorn sets TCP_NODELAY.

This is development infrastructure: production points the same client settings
at a clickhouse-server, and no QuackNet code knows which one it talks to.
"""

from __future__ import annotations

import atexit
import hmac
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

from werkzeug.wrappers import Request, Response

from devtools.chgateway.engine import Engine, Summary
from devtools.chgateway.protocol import (
    STREAMABLE_FORMATS,
    GatewayError,
    content_type,
    decompress,
    error_body,
    is_insert,
    is_select,
    output_format,
    parse_insert_head,
    split_params,
)
from devtools.settings import DevSettings
from quacknet.logs import configure_logging, get_logger

log = get_logger(__name__)

READ_SIZE = 1 << 20  # fewer Python-level decompress/append rounds per insert
HEAD_LIMIT = 1 << 20  # an INSERT statement longer than this, before its data, is refused


class Gateway:
    def __init__(self, settings: DevSettings, engine: Engine):
        self.settings = settings
        self.engine = engine

    def __call__(self, environ, start_response):
        request = Request(environ)
        query_id = request.args.get("query_id") or str(uuid.uuid4())
        try:
            response = self.dispatch(request, query_id)
        except GatewayError as err:
            response = self.error_response(err, query_id)
        except Exception as exc:  # an engine crash must still answer as ClickHouse would
            log.exception("gateway.unhandled", query_id=query_id)
            response = self.error_response(GatewayError(1001, f"{type(exc).__name__}: {exc}"), query_id)
        return response(environ, start_response)

    def dispatch(self, request: Request, query_id: str) -> Response:
        if request.path in ("/ping", "/replicas_status") or (request.path == "/" and request.method in ("GET", "HEAD")
                                                               and "query" not in request.args and not request.content_length):
            return Response("Ok.\n", content_type="text/plain; charset=UTF-8")
        if request.path not in ("/", "/query"):
            raise GatewayError(48, f"No handler for {request.path}", status=404)
        form = request.mimetype.startswith(("multipart/form-data", "application/x-www-form-urlencoded"))
        if form and request.files:
            raise GatewayError(48, "External data tables are not supported by the local gateway")
        args = list(request.args.items(multi=True)) + (list(request.form.items(multi=True)) if form else [])
        req = split_params(args)
        req.query_id = query_id
        self.authenticate(request, req.user, req.password)
        body = iter(()) if form else decompress(self._read_body(request), request.headers.get("Content-Encoding"))
        stack = ExitStack()
        try:
            sess = stack.enter_context(self.engine.session(req.session_id, req.session_timeout, req.session_check))
            sess.prepare(req.settings, req.database)
            head, at_eof = self._statement_head(req.query, body)
            insert = parse_insert_head(head, at_eof) if is_insert(head) else None
            if insert is not None:
                data = _chain(head[insert.data_offset:], body)
                summary = sess.insert(insert.statement, insert.fmt, data)
                return self._finish(Response(b"", content_type="text/plain; charset=UTF-8"), req, summary, "TabSeparated")
            sql = (head + b"".join(body)).decode("utf-8", errors="replace")
            fmt = output_format(sql, req.default_format)
            if not req.wait_end_of_query and fmt.lower() in STREAMABLE_FORMATS and is_select(sql):
                chunks = sess.stream(sql, fmt, req.params)
                response = Response(_closing(chunks, stack.pop_all()), content_type=content_type(fmt), direct_passthrough=True)
                return self._finish(response, req, None, fmt)
            payload, summary = sess.query(sql, fmt, req.params)
            return self._finish(Response(payload, content_type=content_type(fmt)), req, summary, fmt)
        finally:
            stack.close()

    def _finish(self, response: Response, req, summary: Summary | None, fmt: str) -> Response:
        headers = response.headers
        headers["X-ClickHouse-Query-Id"] = req.query_id
        headers["X-ClickHouse-Format"] = fmt
        headers["X-ClickHouse-Timezone"] = self.engine.timezone
        headers["X-ClickHouse-Server-Display-Name"] = "quacknet-chgateway"
        headers["Keep-Alive"] = "timeout=60"
        if req.session_id:
            headers["X-ClickHouse-Session-Id"] = req.session_id
        if summary is not None:
            headers["X-ClickHouse-Summary"] = summary.header()
        return response

    def error_response(self, err: GatewayError, query_id: str) -> Response:
        log.info("gateway.error", code=err.code, status=err.status, query_id=query_id, message=err.message[:500])
        response = Response(error_body(err.code, err.message, self.engine.version), status=err.status,
                            content_type="text/plain; charset=UTF-8")
        response.headers["X-ClickHouse-Exception-Code"] = str(err.code)
        response.headers["X-ClickHouse-Query-Id"] = query_id
        return response

    def authenticate(self, request: Request, user: str | None, password: str | None) -> None:
        """Check the configured credentials (Basic auth, X-ClickHouse-User/Key headers, or URL)."""
        if request.authorization and request.authorization.type == "basic":
            user, password = request.authorization.username, request.authorization.password
        user = request.headers.get("X-ClickHouse-User", user) or "default"
        password = request.headers.get("X-ClickHouse-Key", password) or ""
        expected = self.settings.clickhouse_password.get_secret_value()
        if user != self.settings.clickhouse_user or not hmac.compare_digest(password.encode(), expected.encode()):
            raise GatewayError(516, f"{user}: Authentication failed: password is incorrect, or there is no user with such name.")

    @staticmethod
    def _read_body(request: Request) -> Iterator[bytes]:
        stream = request.environ["wsgi.input"]
        while chunk := stream.read(READ_SIZE):
            yield chunk

    @staticmethod
    def _statement_head(query: str, body: Iterator[bytes]) -> tuple[bytes, bool]:
        """The query param plus as much body as needed to see where an INSERT's data starts.

        As in ClickHouse, the ``query`` parameter and the body form one text, the
        parameter followed by a newline.
        """
        head = (query + "\n").encode() if query else b""
        while True:
            if head.strip() and (not is_insert(head) or parse_insert_head(head, False) is not None):
                return head, False
            chunk = next(body, None)
            if chunk is None:
                return head, True
            head += chunk
            if len(head) > HEAD_LIMIT and is_insert(head) and parse_insert_head(head, False) is None:
                raise GatewayError(62, "INSERT statement without FORMAT exceeds the gateway's 1 MiB limit", status=413)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


class _closing:
    """A WSGI body that releases the session when the server finishes (or abandons) the stream."""

    def __init__(self, chunks: Iterator[bytes], stack: ExitStack):
        self._chunks, self._stack = chunks, stack

    def __iter__(self):
        return self._chunks

    def close(self):
        try:
            self._chunks.close()
        finally:
            self._stack.close()


def create_app(settings: DevSettings | None = None) -> Gateway:
    """gunicorn entry point: ``devtools.chgateway.app:create_app()``."""
    settings = settings or DevSettings()
    configure_logging(settings)
    data = settings.data_dir("clickhouse")
    data.mkdir(parents=True, exist_ok=True)
    engine = Engine(str(data), settings.gateway_max_sessions, settings.gateway_session_timeout_s)
    atexit.register(engine.close)
    log.info("gateway.ready", data=str(data), version=engine.version, timezone=engine.timezone)
    return Gateway(settings, engine)
