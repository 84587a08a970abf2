"""The ClickHouse HTTP rules of the local gateway, without an engine."""

import gzip
import zlib

import lz4.frame
import pytest
import zstandard

from devtools.chgateway.protocol import (
    STEP,
    GatewayError,
    bounded,
    content_type,
    decompress,
    error_body,
    error_code,
    http_status,
    is_insert,
    is_select,
    output_format,
    parse_insert_head,
    split_params,
)


def test_split_params_sorts_transport_params_settings_and_query_parameters():
    req = split_params([
        ("query", "SELECT {x:UInt8}"), ("database", "db"), ("session_id", "s1"), ("session_timeout", "30"),
        ("wait_end_of_query", "1"), ("param_x", "7"), ("max_threads", "2"), ("insert_deduplication_token", "t"),
        ("client_protocol_version", "54405"), ("send_progress_in_http_headers", "1"), ("query_id", "q"),
    ])
    assert req.query == "SELECT {x:UInt8}" and req.database == "db"
    assert req.session_id == "s1" and req.session_timeout == 30.0 and req.wait_end_of_query
    assert req.params == {"x": "7"}
    assert req.settings == {"max_threads": "2", "insert_deduplication_token": "t"}
    assert req.query_id == "q"


def test_split_params_rejects_a_bad_session_timeout():
    with pytest.raises(GatewayError) as err:
        split_params([("session_timeout", "soon")])
    assert err.value.code == 36 and err.value.status == 400


def _chunks(data: bytes, size: int = 7):
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("encoding,compress", [
    ("lz4", lz4.frame.compress),
    ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
])
def test_decompress_reads_every_concatenated_frame_across_chunk_boundaries(encoding, compress):
    blocks = [b"INSERT INTO t FORMAT Native\n", bytes(range(256)) * 50, b"tail"]
    body = b"".join(compress(b) for b in blocks)
    assert b"".join(decompress(_chunks(body), encoding)) == b"".join(blocks)


def test_decompress_passes_identity_and_refuses_unknown_encodings():
    assert b"".join(decompress([b"ab", b"c"], None)) == b"abc"
    with pytest.raises(GatewayError) as err:
        list(decompress([b"x"], "br"))
    assert err.value.status == 415


def test_truncated_lz4_body_is_an_error_not_silently_short():
    body = lz4.frame.compress(b"x" * 1000)
    with pytest.raises(GatewayError, match="ends inside a frame"):
        list(decompress([body[:-5]], "lz4"))


@pytest.mark.parametrize("head,statement,fmt,rest", [
    (b"INSERT INTO db.t (`a`, `b`) FORMAT Native\n\x01\x02", "INSERT INTO db.t (`a`, `b`)", "Native", b"\x01\x02"),
    (b"insert into t format CSV 1,2\n", "insert into t", "CSV", b"1,2\n"),
    (b"-- c\nINSERT INTO t SETTINGS async_insert=0 FORMAT TSV\r\n1\t2\n", "-- c\nINSERT INTO t SETTINGS async_insert=0", "TSV", b"1\t2\n"),
])
def test_insert_head_splits_the_statement_from_its_data(head, statement, fmt, rest):
    assert is_insert(head)
    parsed = parse_insert_head(head, at_eof=False)
    assert (parsed.statement, parsed.fmt, head[parsed.data_offset:]) == (statement, fmt, rest)


def test_insert_head_waits_for_more_bytes_and_handles_statements_without_data():
    assert parse_insert_head(b"INSERT INTO t FORMAT Nat", at_eof=False) is None
    assert parse_insert_head(b"INSERT INTO t VALUES (1)", at_eof=True) is None
    tail = parse_insert_head(b"INSERT INTO t FORMAT Native", at_eof=True)
    assert (tail.statement, tail.fmt) == ("INSERT INTO t", "Native")


def test_statement_kinds():
    assert not is_insert(b"SELECT 'INSERT'")
    assert is_select("  (SELECT 1)") and is_select("WITH 1 AS x SELECT x") and is_select("/* hi */ select 1")
    assert not is_select("CREATE TABLE t (a UInt8) ENGINE=Memory") and not is_select("INSERT INTO t SELECT 1")


def test_output_format_takes_the_trailing_format_clause_or_the_default():
    assert output_format("SELECT 1\n FORMAT Native", "TabSeparated") == "Native"
    assert output_format("SELECT 'FORMAT CSV' AS x", "TabSeparated") == "TabSeparated"
    assert content_type("Native") == "application/octet-stream"
    assert content_type("TabSeparatedWithNamesAndTypes").startswith("text/tab-separated-values")


def test_engine_errors_keep_their_code_and_map_to_http_statuses():
    msg = "Code: 60. DB::Exception: Unknown table expression identifier 'nope'. (UNKNOWN_TABLE)"
    assert error_code(msg) == 60 and http_status(60) == 404
    assert http_status(62) == 400 and http_status(516) == 401 and http_status(999) == 500
    assert error_code("segfault-ish text without a code") == 1001
    assert error_body(60, msg, "26.9").decode() == msg + " (version 26.9)\n"
    assert error_body(36, "bad", "26.9").decode() == "Code: 36. DB::Exception: bad (version 26.9)\n"


COMPRESSORS = {
    "lz4": lz4.frame.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}


@pytest.mark.parametrize("encoding", sorted(COMPRESSORS))
def test_a_body_cut_inside_any_frame_is_an_error_with_the_decoders_code(encoding):
    compress = COMPRESSORS[encoding]
    first, second = compress(b"a" * 5000), compress(bytes(range(256)) * 40)
    for cut in (first + second[: len(second) // 2], first + second[:3], first[:-1]):
        with pytest.raises(GatewayError, match="ends inside a frame") as err:
            list(decompress(_chunks(cut, 1000), encoding))
        assert (err.value.code, err.value.status) == ({"lz4": 618, "zstd": 561, "gzip": 354, "deflate": 354}[encoding], 400)


@pytest.mark.parametrize("encoding", sorted(COMPRESSORS))
def test_garbage_after_a_frame_is_an_error_not_a_crash(encoding):
    body = COMPRESSORS[encoding](b"x" * 100) + b"definitely not a frame" * 10
    with pytest.raises(GatewayError, match="Cannot decode") as err:
        list(decompress([body], encoding))
    assert err.value.status == 400


@pytest.mark.parametrize("encoding", sorted(COMPRESSORS))
def test_a_small_body_inflates_one_bounded_step_at_a_time(encoding):
    body = COMPRESSORS[encoding](b"\0" * (64 * STEP))
    assert len(body) < 2 * STEP
    sizes = [len(chunk) for chunk in decompress([body], encoding)]
    assert sum(sizes) == 64 * STEP and max(sizes) <= STEP


def test_the_decompressed_body_is_bounded():
    assert b"".join(bounded([b"ab", b"cd"], 4)) == b"abcd"
    with pytest.raises(GatewayError, match="QUACKNET_GATEWAY_MAX_BODY_BYTES") as err:
        list(bounded([b"ab", b"cd", b"e"], 4))
    assert (err.value.code, err.value.status) == (290, 413)


def test_statement_text_with_invalid_utf8_is_still_split_not_a_crash():
    head = parse_insert_head(b"INSERT INTO t\xff FORMAT CSV\n1\n", at_eof=False)
    assert head.statement == "INSERT INTO t\ufffd" and head.fmt == "CSV"
