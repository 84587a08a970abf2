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
from backports import zstd

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

STEP = 1 << 20  # at most this much decompressed output at a time: a small body cannot balloon in memory

# ClickHouse's codes for a body its decoder cannot read (corrupt, or ending inside a frame).
DECODER_CODES = {"lz4": 618, "zstd": 561, "gzip": 354, "deflate": 354}


def decompress(chunks: Iterable[bytes], encoding: str | None) -> Iterator[bytes]:
    """Decode a Content-Encoding stream incrementally, across concatenated frames/members.

    clickhouse-connect sends each insert block as its own LZ4 frame (or zstd frame), so a body is
    a sequence of frames, not one. Every decoder is asked for at most ``STEP`` bytes per call
    (a 100 KB gzip body that inflates to 100 MiB never exists in memory at once), and a body
    that is corrupt or ends inside a frame is an error, never a silently short stream: an
    INSERT must not store the frames that happened to arrive.
    """
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
    elif encoding == "lz4":
        yield from _frames(chunks, lz4.frame.LZ4FrameDecompressor, encoding)
    elif encoding == "zstd":
        yield from _frames(chunks, zstd.ZstdDecompressor, encoding)
    elif encoding in ("gzip", "x-gzip"):
        yield from _frames(chunks, lambda: _Zlib(wbits=31), "gzip")
    elif encoding == "deflate":
        yield from _frames(chunks, lambda: _Zlib(wbits=15), encoding)
    else:
        raise GatewayError(48, f"Unsupported Content-Encoding: {encoding}", status=415)


class _Zlib:
    """zlib.decompressobj with the interface of lz4's and zstd's decompressors
    (``decompress(data, max_length)``, ``eof``, ``needs_input``, ``unused_data``)."""

    def __init__(self, wbits: int):
        self._obj = zlib.decompressobj(wbits=wbits)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return self._obj.decompress(self._obj.unconsumed_tail + data, max_length)

    @property
    def eof(self) -> bool:
        return self._obj.eof

    @property
    def needs_input(self) -> bool:
        return not self._obj.unconsumed_tail

    @property
    def unused_data(self) -> bytes:
        return self._obj.unused_data


def _frames(chunks: Iterable[bytes], new, name: str) -> Iterator[bytes]:
    dec = None
    try:
        for data in chunks:
            while data:
                dec = dec or new()
                out = dec.decompress(data, STEP)
                while True:  # drain what this input holds, STEP bytes at a time
                    if out:
                        yield out
                    if dec.eof or (dec.needs_input and len(out) < STEP):
                        break
                    out = dec.decompress(b"", STEP)
                data = b""
                if dec.eof:  # the next frame (or member) starts in what is left over
                    data, dec = dec.unused_data, None
    except (RuntimeError, ValueError, EOFError, zlib.error, zstd.ZstdError) as exc:
        raise GatewayError(DECODER_CODES[name], f"Cannot decode the {name} request body: {exc}", status=400) from None
    if dec is not None:
        raise GatewayError(DECODER_CODES[name], f"Compressed request body ends inside a frame ({name}): it was cut short", status=400)


def bounded(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """The body's (decompressed) bytes, refused once they exceed ``limit``."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise GatewayError(290, f"Request body exceeds the gateway's limit of {limit} bytes after decompression "
                                    "(QUACKNET_GATEWAY_MAX_BODY_BYTES)", status=413)
        yield chunk


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
                return InsertHead(_text(head[: m2.start()]), m2.group(1).decode(), len(head))
        return None
    return InsertHead(_text(head[: m.start()]), m.group(1).decode(), m.end())


def _text(statement: bytes) -> str:
    # As for any statement text: invalid UTF-8 becomes U+FFFD and the engine names the error.
    return statement.decode("utf-8", errors="replace").strip()


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
    # 403: refused by the read-only GET, the grants or the gateway's statement policy
    **dict.fromkeys((164, 358, 481, 497), 403),
    # 400: a setting pinned by the gateway, a feature it turns off, a body its decoders cannot read
    **dict.fromkeys((33, 344, 354, 452, 561, 618), 400),
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
