"""The local gateway asks for the generated login like a clickhouse-server with a password, keeps GET
read-only, and takes a curl body as the query. Real gateway, real engine."""

from __future__ import annotations

import subprocess

import pytest

from devtools.settings import DevSettings
from tests.support.gateway import basic_auth, request, require_local_gateway, sql, value


@pytest.fixture
def gw(stack, database) -> DevSettings:
    require_local_gateway(stack)
    value(stack, f"CREATE TABLE {database}.t (k UInt64) ENGINE = MergeTree ORDER BY k")
    value(stack, f"INSERT INTO {database}.t VALUES (1), (2)")
    return stack


def _wrong_logins(s: DevSettings) -> dict[str, tuple[dict, dict]]:
    """name -> (headers, URL params) of a request that must not get in."""
    good = s.clickhouse_password.get_secret_value()
    return {
        "none": ({}, {}),
        "wrong password": (basic_auth(s.clickhouse_user, good + "x"), {}),
        "wrong user": (basic_auth("default", good), {}),
        "empty password": (basic_auth(s.clickhouse_user, ""), {}),
        "wrong X-ClickHouse-Key": ({"X-ClickHouse-User": s.clickhouse_user, "X-ClickHouse-Key": "nope"}, {}),
        "wrong URL password": ({}, {"user": s.clickhouse_user, "password": "nope"}),
    }


@pytest.mark.parametrize("who", ["none", "wrong password", "wrong user", "empty password", "wrong X-ClickHouse-Key",
                                 "wrong URL password"])
@pytest.mark.parametrize("method,path,query,body", [
    ("POST", "/", None, "SELECT 1"),
    ("GET", "/", "SELECT 1", ""),
    ("POST", "/query", None, "SELECT 1"),
    ("GET", "/replicas_status", None, ""),
    ("GET", "/no/such/handler", None, ""),
], ids=["post-body", "get-query", "post-query-path", "replicas-status", "unknown-path"])
def test_requests_without_valid_credentials_get_516(gw, who, method, path, query, body):
    headers, params = _wrong_logins(gw)[who]
    reply = request(gw, method, path, params={**params, **({"query": query} if query else {})}, body=body.encode(),
                    headers=headers, auth=False)
    assert (reply.status, reply.code) == (401, 516), reply.text
    assert reply.text.startswith("Code: 516. DB::Exception:") and "Authentication failed" in reply.text


def test_an_unauthenticated_statement_does_nothing(gw, database):
    reply = sql(gw, f"INSERT INTO {database}.t VALUES (3)", auth=False)
    assert reply.code == 516
    reply = request(gw, "POST", "/", params={"query": f"DROP TABLE {database}.t"}, auth=False)
    assert reply.code == 516
    assert value(gw, f"SELECT count() FROM {database}.t") == "2"


def test_ping_and_the_bare_root_stay_open_as_on_clickhouse_server(gw):
    for path in ("/ping", "/"):
        reply = request(gw, "GET", path, auth=False)
        assert (reply.status, reply.body) == (200, b"Ok.\n")


def test_every_way_clickhouse_accepts_credentials_works(gw):
    user, password = gw.clickhouse_user, gw.clickhouse_password.get_secret_value()
    for headers, params in [(basic_auth(user, password), {}),
                            ({"X-ClickHouse-User": user, "X-ClickHouse-Key": password}, {}),
                            ({}, {"user": user, "password": password})]:
        reply = request(gw, "GET", "/", params={**params, "query": "SELECT 41 + 1"}, headers=headers, auth=False)
        assert (reply.status, reply.body) == (200, b"42\n")


WRITES = [
    "CREATE DATABASE {db}_made_by_get",
    "CREATE TABLE {db}.made_by_get (k UInt8) ENGINE = Memory",
    "INSERT INTO {db}.t VALUES (99)",
    "INSERT INTO {db}.t SELECT 98",
    "ALTER TABLE {db}.t DELETE WHERE 1",
    "ALTER TABLE {db}.t ADD COLUMN extra UInt8",
    "DELETE FROM {db}.t WHERE 1",
    "TRUNCATE TABLE {db}.t",
    "DROP TABLE {db}.t",
    "RENAME TABLE {db}.t TO {db}.t2",
    "OPTIMIZE TABLE {db}.t FINAL",
    "DETACH TABLE {db}.t",
    "CREATE FUNCTION made_by_get AS (x) -> x",
    "KILL QUERY WHERE 0",
    "SYSTEM FLUSH LOGS",
]


@pytest.mark.parametrize("session", [False, True], ids=["no-session", "session"])
@pytest.mark.parametrize("statement", WRITES)
def test_get_is_read_only(gw, database, statement, session):
    params = {"query": statement.format(db=database), **({"session_id": f"s-{database}"} if session else {})}
    reply = request(gw, "GET", "/", params=params)
    assert (reply.status, reply.code) == (403, 164), reply.text
    assert "method GET implies readonly" in reply.text
    # nothing changed
    assert value(gw, f"SELECT count() FROM {database}.t") == "2"
    assert value(gw, f"SELECT groupArray(name) FROM system.columns WHERE database = '{database}' AND table = 't'") == "['k']"
    assert value(gw, f"EXISTS DATABASE {database}_made_by_get") == "0"
    assert value(gw, f"EXISTS TABLE {database}.made_by_get") == "0"
    assert value(gw, "SELECT count() FROM system.functions WHERE name = 'made_by_get'") == "0"


@pytest.mark.parametrize("statement,expected", [
    ("SELECT count() FROM {db}.t", "2"),
    ("WITH 2 AS x SELECT x * 21", "42"),
    ("(SELECT 42)", "42"),
    ("SHOW TABLES FROM {db}", "t"),
    ("DESCRIBE TABLE {db}.t", "k\tUInt64"),
    ("EXISTS TABLE {db}.t", "1"),
    ("EXPLAIN SYNTAX SELECT 1", "SELECT 1"),
])
def test_get_still_reads(gw, database, statement, expected):
    reply = request(gw, "GET", "/", params={"query": statement.format(db=database)})
    assert reply.status == 200, reply.text
    assert reply.text.strip().startswith(expected)


def test_set_and_use_are_allowed_on_get_within_a_session(gw, database):
    session = {"session_id": f"get-{database}"}
    assert request(gw, "GET", "/", params={**session, "query": "SET max_threads = 3"}).status == 200
    assert request(gw, "GET", "/", params={**session, "query": f"USE {database}"}).status == 200
    reply = request(gw, "GET", "/", params={**session, "query": "SELECT getSetting('max_threads'), currentDatabase()"})
    assert reply.text.split() == ["3", database]


def test_post_still_writes(gw, database):
    assert sql(gw, f"INSERT INTO {database}.t VALUES (3)").status == 200
    assert sql(gw, f"CREATE TABLE {database}.u (k UInt8) ENGINE = Memory").status == 200
    assert value(gw, f"SELECT count() FROM {database}.t") == "3"


def test_curls_default_form_content_type_is_taken_as_the_query(gw):
    """`echo 'SELECT 1' | curl 'http://127.0.0.1:8123/' --data-binary @-` sends
    application/x-www-form-urlencoded; clickhouse-server runs the body as the query."""
    done = subprocess.run(["curl", "-sS", "-u", f"{gw.clickhouse_user}:{gw.clickhouse_password.get_secret_value()}",
                           f"{gw.clickhouse_url.rstrip('/')}/", "--data-binary", "@-"],
                          input=b"SELECT 1\n", capture_output=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, b"1\n"), done.stderr
    reply = sql(gw, "SELECT 2 + 2", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (reply.status, reply.body) == (200, b"4\n")


def test_an_insert_body_with_the_form_content_type_is_data(gw, database):
    reply = request(gw, params={"query": f"INSERT INTO {database}.t FORMAT CSV"}, body=b"7\n8\n",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 200, reply.text
    assert value(gw, f"SELECT sum(k) FROM {database}.t") == str(1 + 2 + 7 + 8)


@pytest.mark.parametrize("param", ["query_id", "session_id"])
def test_an_id_that_cannot_be_echoed_in_a_header_is_a_clear_error(gw, param):
    reply = request(gw, params={param: "a\r\nX-Injected: 1"}, body=b"SELECT 1")
    assert (reply.status, reply.code) == (400, 36), reply.text
    assert "x-injected" not in reply.headers


def test_invalid_utf8_in_an_insert_statement_is_a_clear_error(gw, database):
    reply = request(gw, body=f"INSERT INTO {database}.t\xff FORMAT CSV\n5\n".encode("latin-1"))
    assert 400 <= reply.status < 500 and reply.code == 62, reply.text
    assert value(gw, f"SELECT count() FROM {database}.t") == "2"


def test_a_web_pages_request_is_refused_even_with_the_browsers_cached_login(gw, database):
    """A page on any site can make the browser POST text/plain to 127.0.0.1 (and attach a login
    the developer once typed there); browsers mark such requests with an Origin header."""
    for origin in ("http://evil.example", "null", "http://localhost:1"):
        reply = sql(gw, f"INSERT INTO {database}.t VALUES (66)", headers={"Origin": origin, "Content-Type": "text/plain"})
        assert (reply.status, reply.code) == (403, 497), reply.text
    assert value(gw, f"SELECT count() FROM {database}.t") == "2"
    own = f"http://{gw.clickhouse_host}:{gw.clickhouse_port}"
    assert sql(gw, "SELECT 1", headers={"Origin": own}).body == b"1\n"
