"""What one statement may do through the local gateway, decided with the engine's own parser.

The grants and pinned settings of lockdown.py stop what the engine checks. clickhouse-local (chDB)
also does things the engine never checks, because a local user owns the machine: the scalar
``file()`` reads any path, INTO OUTFILE writes one, INSERT ... FROM INFILE and ATTACH ... FROM
'<path>' read one, ``disk(...)`` creates directories, ``python()`` reads this process's memory.
Those are refused here, and a GET may only read, as on clickhouse-server (GET implies readonly).
Multi-statements are refused as clickhouse-server's HTTP interface refuses them.

No regular expressions: the engine parses the statement (``formatQuerySingleLine``: exactly one
statement, valid syntax, canonical text without comments or inline INSERT data) and its lexer
(``tokenizeQuery``) splits the canonical text. A string literal or a comment that merely spells
``file(`` is never taken for a call, and a call in odd case, quoting or spacing is never missed.
The user's text is passed as a query parameter, never spliced into SQL. Verdicts are cached by
text: the loader and clickhouse-connect send the same few statements again and again.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from devtools.chgateway.protocol import GatewayError

# Statements a GET may run (clickhouse-server runs GET with readonly=2: reads and SET only).
READ_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "SET", "USE"})

# Calls the engine runs unchecked in local mode: name -> (ClickHouse code, why).
DENIED_CALLS = {
    "file": (481, "file() reads and writes the file system outside the gateway's data directory"),
    "disk": (481, "disk() creates directories outside the gateway's data directory"),
    "python": (497, "python() reads the gateway process's memory"),
}

INSPECT = "SELECT f, tokenizeQuery(f) FROM (SELECT formatQuerySingleLine({q:String}) AS f) FORMAT JSONCompactEachRow"
CACHE_ENTRIES = 1024
CACHE_MAX_TEXT = 16 * 1024
INLINE_HEAD_SCAN = 64 * 1024  # an INSERT's statement, before its inline data, is shorter than this
INLINE_DATA_LEX_MAX = 1 << 20  # inline data with a ';' in it is lexed (to find a second statement) up to this size


@dataclass(frozen=True)
class Statement:
    kind: str  # the first keyword of the canonical text: SELECT, INSERT, CREATE, ...
    text: str = ""  # the engine's canonical single-line text
    refusal: GatewayError | None = None

    @property
    def inline_format(self) -> str | None:
        """For an INSERT carrying its data in the statement text (``INSERT ... VALUES (...)``), the
        data's format: the engine's canonical text drops the data and says ``FORMAT Values``."""
        head, found, fmt = self.text.rpartition(" FORMAT ")
        return fmt if self.kind == "INSERT" and found and head and fmt.isidentifier() else None


def _escape(text: str) -> str:
    """A query parameter's value in ClickHouse's escaped text form (the engine unescapes it)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r").replace("\0", "\\0")


def _clean(err: GatewayError) -> GatewayError:
    """The engine's parse error without the inspecting query it was raised in."""
    head, found, tail = err.message.partition(": In scope SELECT formatQuerySingleLine(")
    if found:
        name = tail[tail.rfind(" ("):] if tail.rstrip().endswith(")") else ""
        return GatewayError(err.code, head.rstrip().rstrip(".").rstrip() + "." + name, err.status)
    return err


def _words(text: str, tokens: list[dict]) -> list[tuple[str, str]]:
    raw = text.encode()
    words = []
    for tok in tokens:
        if tok["type"] == "Whitespace":
            continue
        value = raw[tok["begin"]:tok["end"]].decode(errors="replace")
        if tok["type"] == "QuotedIdentifier" and len(value) >= 2:
            value = value[1:-1]
        words.append((tok["type"], value))
    return words


def judge(text: str, tokens: list[dict]) -> Statement:
    """The verdict on one statement's canonical text and its tokens."""
    words = _words(text, tokens)
    kind = next((v.upper() for t, v in words if t == "BareWord"), "")
    for i, (kind_i, value) in enumerate(words):
        after = words[i + 1] if i + 1 < len(words) else ("", "")
        upper = value.upper()
        if kind_i in ("BareWord", "QuotedIdentifier") and value.lower() in DENIED_CALLS and after[0] == "OpeningRoundBracket":
            code, why = DENIED_CALLS[value.lower()]
            return Statement(kind, text, GatewayError(code, f"{why}; the local gateway refuses it"))
        if kind_i != "BareWord":
            continue
        if upper == "INTO" and after[0] == "BareWord" and after[1].upper() == "OUTFILE":
            return Statement(kind, text, GatewayError(358, "INTO OUTFILE is not allowed"))
        if upper == "INFILE" and i and words[i - 1][1].upper() == "FROM" and after[0] == "StringLiteral":
            return Statement(kind, text, GatewayError(481, "INSERT ... FROM INFILE reads the file system; send the data in the body"))
        if kind == "ATTACH" and upper == "FROM" and after[0] == "StringLiteral":
            return Statement(kind, text, GatewayError(481, "ATTACH ... FROM a path reads the file system outside the "
                                                          "gateway's data directory"))
    return Statement(kind, text)


def _one_statement(run, data: bytes) -> bytes:
    """Inline data up to a closing ``;``. Anything after it is a second statement: refused, one
    statement per request as over clickhouse-server's HTTP interface (run as text, clickhouse-local
    would execute it unchecked; streamed, the engine's Values reader would drop it silently)."""
    if b";" not in data:
        return data
    if len(data) > INLINE_DATA_LEX_MAX:
        raise GatewayError(62, "Inline INSERT data this large with a ';' in it: send INSERT ... FORMAT Values and the data "
                               "in the body")
    [tokens] = json.loads(run("SELECT tokenizeQuery({q:String}) FORMAT JSONCompactEachRow", "", {"q": _escape(data.decode())}))
    depth = 0
    for i, tok in enumerate(tokens):
        depth += (tok["type"] == "OpeningRoundBracket") - (tok["type"] == "ClosingRoundBracket")
        if depth == 0 and tok["type"] == "Semicolon":
            if any(t["type"] != "Whitespace" for t in tokens[i + 1:]):
                raise GatewayError(62, "Syntax error (Multi-statements are not allowed): a statement follows this "
                                       "INSERT's data")
            return data[:tok["begin"]]
    return data


class Policy:
    """Inspects statements on the caller's engine connection; caches verdicts by text."""

    def __init__(self):
        self._cache: OrderedDict[str, Statement] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, run: Callable[[str, str, dict[str, str]], bytes], sql: str, readonly: bool) -> Statement:
        """Raise the refusal for ``sql`` (a GatewayError); ``run(sql, fmt, params)`` queries the engine."""
        with self._lock:
            verdict = self._cache.get(sql)
            if verdict is not None:
                self._cache.move_to_end(sql)
        if verdict is None:
            verdict = self._inspect(run, sql)
            if len(sql) <= CACHE_MAX_TEXT:
                with self._lock:
                    self._cache[sql] = verdict
                    while len(self._cache) > CACHE_ENTRIES:
                        self._cache.popitem(last=False)
        if verdict.refusal is not None:
            raise verdict.refusal
        if readonly and verdict.kind not in READ_KINDS:
            raise GatewayError(164, "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. "
                                    "You should use method POST for modifying queries")
        return verdict

    @staticmethod
    def split_inline_insert(run, sql: str, verdict: Statement) -> tuple[str, str, bytes]:
        """``INSERT ... VALUES (...)`` sent as statement text: (statement, format, data), where the
        engine's parser would start the data. The data is then streamed as data: run as text,
        clickhouse-local would also run whatever follows a ``;`` in it as further statements,
        unchecked. The split point is a VALUES (or FORMAT name) token at the top level whose prefix
        the engine formats exactly as the whole statement."""
        raw = sql.encode()
        prefix = raw[:INLINE_HEAD_SCAN].decode(errors="ignore")
        [tokens] = json.loads(run("SELECT tokenizeQuery({q:String}) FORMAT JSONCompactEachRow", "", {"q": _escape(prefix)}))
        words = [(t["type"], raw[t["begin"]:t["end"]].decode(errors="replace").upper(), t["end"]) for t in tokens
                 if t["type"] != "Whitespace"]
        depth, candidates = 0, []
        for i, (kind, value, end) in enumerate(words):
            depth += (kind == "OpeningRoundBracket") - (kind == "ClosingRoundBracket")
            if depth == 0 and kind == "BareWord" and value == "VALUES":
                candidates.append(end)
            elif depth == 0 and kind == "BareWord" and value == "FORMAT" and i + 1 < len(words):
                candidates.append(words[i + 1][2])
        for end in candidates:
            try:
                [[head]] = [json.loads(run("SELECT formatQuerySingleLine({q:String}) FORMAT JSONCompactEachRow", "",
                                           {"q": _escape(raw[:end].decode())}))]
            except GatewayError:
                continue
            if head == verdict.text:
                return head.rpartition(" FORMAT ")[0], verdict.inline_format, _one_statement(run, raw[end:])
        raise GatewayError(62, "Cannot tell where this INSERT's inline data begins; send INSERT ... FORMAT <format> "
                               "followed by the data")

    @staticmethod
    def _inspect(run, sql: str) -> Statement:
        try:
            text, tokens = json.loads(run(INSPECT, "JSONCompactEachRow", {"q": _escape(sql)}))
        except GatewayError as err:
            raise _clean(err) from None
        return judge(text, tokens)
