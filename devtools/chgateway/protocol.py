"""ClickHouse HTTP interface rules the gateway follows, as pure functions.

Kept free of I/O so each rule is unit-tested on its own: which URL parameters
are transport and which are query settings, how a body is decompressed, where an
``INSERT ... FORMAT x`` statement ends and its data begins, and how an engine
error becomes an HTTP status with ``X-ClickHouse-Exception-Code``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import lz4.frame
import zstandard

# URL parameters the HTTP layer consumes itself; everything else (but param_*) is a query setting.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "user", "password", "quota_key",
    "session_id", "session_timeout", "session_check", "query_id",
    "compress", "decompress", "enable_http_compression", "http_zlib_compression_level",
    "wait_end_of_query", "buffer_size", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "client_protocol_version", "role", "add_http_cors_header", "http_native_compression_disable_checksumming_on_decompress",
})


class GatewayError(Exception):
    """An error reported the way ClickHouse reports it: a code, a message, an HTTP status."""

    def __init__(self, code: int, message: str, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or http_status(code)


@dataclass
class RequestParams:
    query: str = ""
    database: str | None = None
    default_format: str = "TabSeparated"
    session_id: str | None = None
    session_timeout: float | None = None
    session_check: bool = False
    query_id: str | None = None
    wait_end_of_query: bool = False
    user: str | None = None
    password: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def split_params(args: Iterable[tuple[str, str]]) -> RequestParams:
    """Sort URL (or form) parameters into transport fields, query parameters and settings."""
    req = RequestParams()
    for key, value in args:
        if key.startswith("param_"):
            req.params[key[len("param_"):]] = value
        elif key not in TRANSPORT_PARAMS:
            req.settings[key] = value
        elif key == "query":
            req.query = value
        elif key == "database":
            req.database = value or None
        elif key == "default_format":
            req.default_format = value or req.default_format
        elif key == "session_id":
            req.session_id = value or None
        elif key == "session_timeout":
            try:
                req.session_timeout = float(value)
            except ValueError:
                raise GatewayError(36, f"Invalid session timeout: '{value}'") from None
        elif key == "session_check":
            req.session_check = _flag(value)
        elif key == "query_id":
            req.query_id = value or None
        elif key == "wait_end_of_query":
            req.wait_end_of_query = _flag(value)
        elif key == "user":
            req.user = value
        elif key == "password":
            req.password = value
    return req


# --- request body -------------------------------------------------------------------------------

def decompress(chunks: Iterable[bytes], encoding: str | None) -> Iterator[bytes]:
    """Decode a Content-Encoding stream incrementally, across concatenated frames/members.

    clickhouse-connect sends each insert block as its own LZ4 frame (or zstd frame),
    so a body is a sequence of frames, not one.
    """
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
    elif encoding == "lz4":
        yield from _frames(chunks, lambda: lz4.frame.LZ4FrameDecompressor())
    elif encoding == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(_IterReader(chunks), read_across_frames=True)
        while block := reader.read(1 << 20):
            yield block
    elif encoding in ("gzip", "x-gzip"):
        yield from _frames(chunks, lambda: _ZlibFrames(zlib.decompressobj(wbits=31)))
    elif encoding == "deflate":
        yield from _frames(chunks, lambda: _ZlibFrames(zlib.decompressobj()))
    else:
        raise GatewayError(48, f"Unsupported Content-Encoding: {encoding}", status=415)


class _ZlibFrames:
    """zlib.decompressobj with the LZ4FrameDecompressor interface (eof, unused_data, decompress)."""

    def __init__(self, obj):
        self._obj = obj

    def decompress(self, data: bytes) -> bytes:
        return self._obj.decompress(data)

    @property
    def eof(self) -> bool:
        return self._obj.eof

    @property
    def unused_data(self) -> bytes:
        return self._obj.unused_data


def _frames(chunks: Iterable[bytes], new) -> Iterator[bytes]:
    dec = None
    for chunk in chunks:
        while chunk:
            if dec is None:
                dec = new()
            out = dec.decompress(chunk)
            if out:
                yield out
            if dec.eof:
                chunk, dec = dec.unused_data, None
            else:
                chunk = b""
    if dec is not None:
        raise GatewayError(27, "Compressed request body ends inside a frame", status=400)


class _IterReader:
    """A file-like read() over an iterator of byte chunks (for zstandard's stream_reader)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)
        self._buf = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            nxt = next(self._it, None)
            if nxt is None:
                break
            self._buf += nxt
        if size < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:size], self._buf[size:]
        return out


# --- statements ---------------------------------------------------------------------------------

_LEADING_COMMENTS = rb"(?:\s+|--[^\n]*\n|/\*.*?\*/)*"
_INSERT_RE = re.compile(_LEADING_COMMENTS + rb"INSERT\b", re.IGNORECASE | re.DOTALL)
# FORMAT name, then the data begins after blanks up to and including one newline.
_INSERT_FORMAT_RE = re.compile(rb"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)([ \t]*\r?\n|[ \t]+)", re.IGNORECASE)
_TRAILING_FORMAT_RE = re.compile(r"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*;?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class InsertHead:
    statement: str  # INSERT INTO t (cols) [SETTINGS ...], without FORMAT
    fmt: str
    data_offset: int  # where the data starts in the examined bytes


_SELECT_RE = re.compile(_LEADING_COMMENTS.decode() + r"\(*\s*(SELECT|WITH)\b", re.IGNORECASE | re.DOTALL)


def is_select(sql: str) -> bool:
    """Only SELECT-like statements can be streamed by chDB; everything else runs to completion."""
    return _SELECT_RE.match(sql) is not None


def is_insert(head: bytes) -> bool:
    return _INSERT_RE.match(head) is not None


def parse_insert_head(head: bytes, at_eof: bool) -> InsertHead | None:
    """Split ``INSERT ... FORMAT x<newline>data`` at the data; None when more bytes are needed
    (or, at EOF, when the INSERT carries no FORMAT clause and runs as an ordinary query)."""
    m = _INSERT_FORMAT_RE.search(head)
    if m is None:
        if at_eof:
            m2 = re.search(rb"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*$", head, re.IGNORECASE)
            if m2:
                return InsertHead(head[: m2.start()].decode().strip(), m2.group(1).decode(), len(head))
        return None
    return InsertHead(head[: m.start()].decode().strip(), m.group(1).decode(), m.end())


def output_format(query: str, default: str) -> str:
    m = _TRAILING_FORMAT_RE.search(query)
    return m.group(1) if m else default


CONTENT_TYPES = {
    "native": "application/octet-stream",
    "rowbinary": "application/octet-stream",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
}


def content_type(fmt: str) -> str:
    low = fmt.lower()
    if low.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    return CONTENT_TYPES.get(low, "text/plain; charset=UTF-8")


# Formats whose chunks concatenate into one valid stream (no global header or footer).
STREAMABLE_FORMATS = frozenset({"native", "tabseparated", "tsv", "csv", "rowbinary", "jsoneachrow", "tabseparatedraw", "tsvraw"})


# --- errors -------------------------------------------------------------------------------------

_CODE_RE = re.compile(r"Code:\s*(\d+)")

_STATUS_BY_CODE = {
    # 400: the request is wrong
    **dict.fromkeys((6, 26, 27, 32, 33, 36, 38, 41, 42, 43, 44, 53, 62, 69, 70, 72, 117, 128, 130, 190, 399, 456, 457, 467, 691), 400),
    # 401/403: who is asking, and may they
    **dict.fromkeys((194, 516), 401),
    **dict.fromkeys((164, 497), 403),
    # 404: something named does not exist
    **dict.fromkeys((16, 46, 47, 50, 56, 60, 63, 73, 81, 115, 211, 336), 404),
    48: 501,
    373: 409,
}


def error_code(message: str) -> int:
    m = _CODE_RE.search(message)
    return int(m.group(1)) if m else 1001  # STD_EXCEPTION


def http_status(code: int) -> int:
    return _STATUS_BY_CODE.get(code, 500)


def error_body(code: int, message: str, version: str) -> bytes:
    """ClickHouse's error text: 'Code: N. DB::Exception: ... (NAME) (version x)'."""
    text = message.strip()
    if not text.startswith("Code:"):
        text = f"Code: {code}. DB::Exception: {text}"
    return f"{text} (version {version})\n".encode()
