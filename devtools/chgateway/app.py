"""The local ClickHouse gateway: ClickHouse's HTTP interface in front of the chDB engine.

Serves the part of the interface an unmodified clickhouse-connect client uses
(queries in URL or body, ``param_*``, per-request settings, sessions, Native and
text formats, compressed and streamed inserts, ``/ping``, errors with
``X-ClickHouse-Exception-Code``). It runs as a single gunicorn gthread worker
because only one process may open a chDB data dir; gunicorn sets TCP_NODELAY.

It is locked down like a clickhouse-server with a password, because every developer runs it:
every request but ``/ping`` (and the bare ``GET /`` health answer) needs the generated
credentials (code 516 otherwise) and none may come from a web page (an ``Origin`` other than the
gateway's own: code 497); a GET only reads (code 164); the engine cannot reach the file
system outside its data dir or the network (lockdown.py, policy.py); a compressed body that is
corrupt or cut short is an error before anything is stored; the request line, the statement text
held in memory and the decompressed body are bounded (DevSettings ``gateway_max_*``).

This is development infrastructure: production points the same client settings
at a clickhouse-server, and no QuackNet code knows which one it talks to.
"""

from __future__ import annotations

import atexit
import hmac
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from devtools.chgateway import lockdown
from devtools.chgateway.engine import Engine, Summary
from devtools.chgateway.protocol import (
    STREAMABLE_FORMATS,
    GatewayError,
    RequestParams,
    bounded,
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
        given = request.args.get("query_id")
        query_id = given if given and _header_safe(given) else str(uuid.uuid4())  # it is echoed in a header
        try:
            if given and query_id != given:
                raise GatewayError(36, "query_id must be printable ASCII")
            response = self.dispatch(request, query_id)
        except GatewayError as err:
            response = self.error_response(err, query_id)
        except Exception as exc:  # an engine crash must still answer as ClickHouse would
            log.exception("gateway.unhandled", query_id=query_id)
            response = self.error_response(GatewayError(1001, f"{type(exc).__name__}: {exc}"), query_id)
        return response(environ, start_response)

    def dispatch(self, request: Request, query_id: str) -> Response:
        if request.path == "/ping" or (request.path == "/" and request.method in ("GET", "HEAD")
                                       and "query" not in request.args and not _has_body(request)):
            return _ok()
        req, multipart = self._admit(request, query_id)
        if request.path == "/replicas_status":
            return _ok()
        if request.path not in ("/", "/query"):
            raise GatewayError(48, f"No handler for {request.path}", status=404)
        readonly = request.method in ("GET", "HEAD")
        body = iter(()) if multipart else bounded(decompress(self._read_body(request), request.headers.get("Content-Encoding")),
                                                  self.settings.gateway_max_body_bytes)
        stack = ExitStack()
        try:
            sess = stack.enter_context(self.engine.session(req.session_id, req.session_timeout, req.session_check))
            sess.prepare(req.settings, req.database)
            head, at_eof = self._statement_head(req.query, body)
            insert = parse_insert_head(head, at_eof) if is_insert(head) else None
            if insert is not None:
                sess.check(f"{insert.statement} FORMAT {insert.fmt}", readonly)
                return self._inserted(req, sess.insert(insert.statement, insert.fmt, _chain(head[insert.data_offset:], body)))
            sql = self._statement_text(head, body)
            statement = sess.check(sql, readonly)
            if statement.inline_format:  # INSERT ... VALUES (...): its data goes in as data, never as SQL
                target, data_format, data = sess.split_inline_insert(sql, statement)
                return self._inserted(req, sess.insert(target, data_format, [data]))
            fmt = output_format(sql, req.default_format)
            if not req.wait_end_of_query and fmt.lower() in STREAMABLE_FORMATS and is_select(sql):
                chunks = sess.stream(sql, fmt, req.params)
                response = Response(_closing(chunks, stack.pop_all()), content_type=content_type(fmt), direct_passthrough=True)
                return self._finish(response, req, None, fmt)
            payload, summary = sess.query(sql, fmt, req.params)
            return self._finish(Response(payload, content_type=content_type(fmt)), req, summary, fmt)
        finally:
            stack.close()

    def _admit(self, request: Request, query_id: str) -> tuple[RequestParams, bool]:
        """The request's parameters, once it is known not to come from a web page and to carry the login."""
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
            # A web page's request (a form POST carries the browser's cached login, if any): the gateway
            # serves no pages, so no other origin has business here.
            raise GatewayError(497, f"Requests from web pages ({origin[:200]}) are refused by the local gateway")
        # Only multipart bodies are forms (clickhouse-connect's parameters, external data). Any other
        # body is the query or the INSERT's data, as on clickhouse-server: curl's default
        # application/x-www-form-urlencoded included (`curl --data-binary @- <<< 'SELECT 1'`).
        multipart = request.mimetype == "multipart/form-data"
        req = split_params(list(request.args.items(multi=True)) + (self._form(request) if multipart else []))
        req.query_id = query_id
        if req.session_id and not _header_safe(req.session_id):
            raise GatewayError(36, "session_id must be printable ASCII")
        self.authenticate(request, req.user, req.password)
        return req, multipart

    def _inserted(self, req: RequestParams, summary: Summary) -> Response:
        return self._finish(Response(b"", content_type="text/plain; charset=UTF-8"), req, summary, "TabSeparated")

    def _statement_text(self, head: bytes, body: Iterator[bytes]) -> str:
        """The whole statement (query parameter and body), held in memory, so bounded."""
        parts, size, limit = [head], len(head), self.settings.gateway_max_query_bytes
        for chunk in body:
            size += len(chunk)
            if size > limit:
                raise GatewayError(229, f"Query is too large: more than {limit} bytes of statement text "
                                        "(QUACKNET_GATEWAY_MAX_QUERY_BYTES); send large data as INSERT ... FORMAT <format>",
                                   status=413)
            parts.append(chunk)
        return b"".join(parts).decode("utf-8", errors="replace")

    def _finish(self, response: Response, req: RequestParams, summary: Summary | None, fmt: str) -> Response:
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
        while True:
            try:
                chunk = stream.read(READ_SIZE)
            except Exception as exc:  # gunicorn: a socket timeout, a closed connection, broken chunked framing
                raise _unreadable(exc) from None
            if not chunk:
                return
            yield chunk

    @staticmethod
    def _form(request: Request) -> list[tuple[str, str]]:
        try:
            form, files = request.form, request.files
        except HTTPException as exc:
            raise GatewayError(33, f"Cannot read the multipart form: {exc.description}", status=exc.code or 400) from None
        except Exception as exc:
            raise _unreadable(exc) from None
        if files:
            raise GatewayError(48, "External data tables are not supported by the local gateway")
        return list(form.items(multi=True))

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


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _ok() -> Response:
    return Response("Ok.\n", content_type="text/plain; charset=UTF-8")


def _has_body(request: Request) -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _unreadable(exc: Exception) -> GatewayError:
    """A request body the client did not finish sending: nothing of it is used."""
    if isinstance(exc, TimeoutError):
        return GatewayError(209, "Timeout exceeded while reading the request body", status=408)
    return GatewayError(33, f"Cannot read all data of the request body: {type(exc).__name__}: {exc}", status=400)


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
    if not settings.clickhouse_password.get_secret_value():
        raise SystemExit("the local ClickHouse gateway needs a password: QUACKNET_CLICKHOUSE_PASSWORD is set but empty "
                         "(unset it to use the generated one in .quacknet/credentials.env)")
    data = settings.data_dir("clickhouse")
    data.mkdir(parents=True, exist_ok=True)
    config = lockdown.write_config(data)
    engine = Engine(str(data), settings.gateway_max_sessions, settings.gateway_session_timeout_s, str(config))
    atexit.register(engine.close)
    log.info("gateway.ready", data=str(data), version=engine.version, timezone=engine.timezone)
    return Gateway(settings, engine)
