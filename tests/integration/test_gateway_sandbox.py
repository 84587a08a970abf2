"""SQL sent to the local gateway cannot reach the developer's files or other hosts and ports: the
engine refuses (grants, pinned settings) or the gateway refuses on the engine's own parse. Every
case is a ClickHouse error and leaves no trace: no file written, no request received, no row
stored. Real gateway, real engine."""

from __future__ import annotations

import csv
import socket
import threading

import pytest

from devtools.settings import DevSettings
from tests.support.gateway import request, require_local_gateway, sql, value


@pytest.fixture
def gw(stack, database) -> DevSettings:
    require_local_gateway(stack)
    value(stack, f"CREATE TABLE {database}.s (line String) ENGINE = MergeTree ORDER BY tuple()")
    return stack


class Listener:
    """A TCP port on loopback that counts every connection made to it (HTTP or any other protocol)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nreached it!\n")
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def _refused(reply, codes=(481, 497, 358, 452, 344, 36)) -> None:
    assert 400 <= reply.status < 500, f"{reply.status}: {reply.text}"
    assert reply.code in codes, reply.text


def test_file_cannot_read_the_developers_credentials(gw, database):
    secret = gw.clickhouse_password.get_secret_value()
    creds = str(gw.credentials_file)
    data_dir = gw.data_dir("clickhouse")
    relative = "../../credentials.env"  # from the gateway's data dir (its working directory)
    assert (data_dir / relative).resolve() == gw.credentials_file.resolve()
    for statement in [
        f"SELECT * FROM file('{creds}', 'LineAsString')",
        f"SELECT * FROM file('{relative}', 'LineAsString')",
        f"SELECT file('{creds}')",
        f"SELECT `file`('{creds}')",
        f"SELECT length(file('{relative}'))",
        f"SELECT * FROM file('{gw.home}/*.env', 'LineAsString')",
        f"SELECT * FROM filesystem('{gw.home}')",
        f"DESCRIBE (SELECT toUInt8(file('{creds}')))",
        f"CREATE TABLE {database}.d (s String DEFAULT file('{creds}')) ENGINE = Memory",
        f"CREATE DATABASE {database}_fs ENGINE = Filesystem('{gw.home}')",
        f"SELECT * FROM sqlite('{creds}', 't')",
    ]:
        reply = sql(gw, statement)
        _refused(reply)
        assert secret not in reply.text
    # clickhouse-local reads a quoted path as a table; here, as on clickhouse-server, it names no table
    reply = sql(gw, f"SELECT * FROM '{creds}'")
    _refused(reply, codes=(60,))
    assert secret not in reply.text


def test_values_data_is_data_not_expressions(gw, database):
    """Expressions in VALUES would be evaluated while inserting: file() through the data path."""
    creds = str(gw.credentials_file)
    for reply in [sql(gw, f"INSERT INTO {database}.s VALUES (file('{creds}'))"),
                  request(gw, params={"query": f"INSERT INTO {database}.s FORMAT Values"}, body=f"(file('{creds}'))".encode())]:
        _refused(reply)
    assert value(gw, f"SELECT count() FROM {database}.s") == "0"
    assert sql(gw, f"INSERT INTO {database}.s VALUES ('plain literal')").status == 200  # literals still insert
    assert value(gw, f"SELECT count() FROM {database}.s") == "1"


def test_nothing_is_written_outside_the_data_dir(gw, database, tmp_path):
    target = tmp_path / "written"
    value(gw, f"CREATE TABLE {database}.csv (a UInt8) ENGINE = Memory")
    cases = [
        f"INSERT INTO FUNCTION file('{target}', 'CSV', 'a String') VALUES ('x')",
        f"SELECT 1 INTO OUTFILE '{target}'",
        f"SELECT 1 INTO OUTFILE '{target}' AND STDOUT",
        f"DESCRIBE TABLE {database}.s INTO OUTFILE '{target}'",
        f"CREATE TABLE {database}.f (a String) ENGINE = File(CSV, '{target}')",
        f"BACKUP TABLE {database}.s TO File('{target}')",
        f"CREATE TABLE {database}.k (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS disk = disk(type = local, path = '{target}/')",
        f"SELECT 1 AS a FORMAT Protobuf SETTINGS output_format_schema = '{target}'",
    ]
    for statement in cases:
        _refused(sql(gw, statement))
    reply = request(gw, params={"query": f"INSERT INTO {database}.csv FORMAT CSV",
                                "input_format_record_errors_file_path": str(target), "input_format_allow_errors_num": "5"},
                    body=b"1\nnot a number\n")
    _refused(reply)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    assert value(gw, f"SELECT count() FROM {database}.csv") == "0"


def test_nothing_is_read_from_outside_the_data_dir(gw, database, tmp_path):
    data = tmp_path / "rows.csv"
    with open(data, "w", newline="") as f:
        csv.writer(f).writerows([["outside-1"], ["outside-2"]])
    template = tmp_path / "row.tpl"
    template.write_text("outside-template ${line:Quoted}")
    for statement in [
        f"INSERT INTO {database}.s FROM INFILE '{data}' FORMAT CSV",
        f"ATTACH TABLE {database}.att FROM '{tmp_path}' (line String) ENGINE = MergeTree ORDER BY tuple()",
        f"SELECT 'x' AS line FORMAT Template SETTINGS format_template_row = '{template}'",
        f"SELECT * FROM file('{data}', 'CSV')",
        f"SELECT 1 AS a FORMAT Protobuf SETTINGS format_schema = '{tmp_path}/schema:Message'",
    ]:
        reply = sql(gw, statement)
        _refused(reply)
        assert "outside-" not in reply.text
    assert value(gw, f"SELECT count() FROM {database}.s") == "0"
    assert value(gw, f"EXISTS TABLE {database}.att") == "0"


def test_no_other_host_or_port_is_reached(gw, database, listener):
    """url() at the local API's port, and every other way out, at a port that counts connections."""
    api = f"http://127.0.0.1:{gw.api_port}/healthz"
    port = listener.port
    http = f"http://127.0.0.1:{port}/x"
    for statement in [
        f"SELECT * FROM url('{api}', 'LineAsString')",
        f"SELECT * FROM url('{http}', 'LineAsString')",
        f"INSERT INTO FUNCTION url('{http}', 'CSV', 'a String') VALUES ('x')",
        f"CREATE TABLE {database}.u (a String) ENGINE = URL('{http}', 'LineAsString')",
        f"SELECT * FROM s3('{http}', 'CSV', 'a String')",
        f"SELECT * FROM remote('127.0.0.1:{port}', system.one)",
        f"SELECT * FROM remoteSecure('127.0.0.1:{port}', system.one)",
        f"SELECT * FROM mysql('127.0.0.1:{port}', 'db', 't', 'u', 'p')",
        f"SELECT * FROM postgresql('127.0.0.1:{port}', 'db', 't', 'u', 'p')",
        f"SELECT * FROM redis('127.0.0.1:{port}', 'k', 'k String, v String')",
        f"SELECT * FROM mongodb('127.0.0.1:{port}', 'db', 'c', 'u', 'p', 'a String')",
        f"SELECT * FROM hdfs('hdfs://127.0.0.1:{port}/x', 'CSV', 'a String')",
        f"SELECT * FROM jdbc('jdbc:mysql://127.0.0.1:{port}/db', 't')",
        f"CREATE TABLE {database}.k (a String) ENGINE = Kafka('127.0.0.1:{port}', 't', 'g', 'JSONEachRow')",
        f"CREATE DICTIONARY {database}.dict (line String) PRIMARY KEY line "
        f"SOURCE(HTTP(url '{http}' format 'LineAsString')) LAYOUT(HASHED()) LIFETIME(0)",
        f"SELECT * FROM url('x', 'LineAsString') SETTINGS url_base = '{http}'",
    ]:
        _refused(sql(gw, statement))
    reply = request(gw, params={"query": f"INSERT INTO {database}.s FORMAT AvroConfluent",
                                "format_avro_schema_registry_url": f"http://127.0.0.1:{port}"}, body=b"\x00\x00\x00\x00\x01x")
    _refused(reply)
    assert listener.connections == 0


def test_the_python_table_function_cannot_read_the_gateways_memory(gw):
    for statement in ["SELECT * FROM python('sql')", "SELECT * FROM Python(params)"]:
        _refused(sql(gw, statement))


@pytest.mark.parametrize("setting,literal", [
    ("filter", "'1'"), ("select", "'1'"), ("order", "'1'"), ("sort", "'1'"), ("additional_result_filter", "'1'"),
    ("additional_table_filters", "{'t': '1'}"), ("dialect", "'kusto'"), ("format_template_row", "'/etc/passwd'"),
    ("url_base", "'http://127.0.0.1:1/'"), ("input_format_values_interpret_expressions", "1"),
    ("allow_experimental_eval_table_function", "1"),
])
def test_settings_that_aim_the_engine_elsewhere_are_pinned(gw, setting, literal):
    url_value = literal.strip("'") if literal.startswith("'") else literal
    for reply in [request(gw, params={setting: url_value}, body=b"SELECT 1"),
                  sql(gw, f"SELECT 1 SETTINGS {setting} = {literal}"),
                  request(gw, params={"session_id": f"pin-{setting}"}, body=f"SET {setting} = {literal}".encode())]:
        assert (reply.status, reply.code) == (400, 452), reply.text


@pytest.mark.parametrize("first", ["SELECT 1", "INSERT INTO {db}.s VALUES ('first statement')"])
def test_one_statement_per_request_as_on_clickhouse_server(gw, database, first):
    """A second statement would escape every check made on the first."""
    reply = sql(gw, first.format(db=database) + f"; INSERT INTO {database}.s SELECT * FROM file('{gw.credentials_file}', 'LineAsString')")
    assert reply.code == 62 and "Multi-statements are not allowed" in reply.text, reply.text
    assert value(gw, f"SELECT count() FROM {database}.s") == "0"


def test_a_string_or_a_comment_that_spells_a_refused_call_is_just_text(gw):
    assert value(gw, "SELECT 'file(''/etc/passwd'') INTO OUTFILE ''x''' -- file('y')") == "file(\\'/etc/passwd\\') INTO OUTFILE \\'x\\'"
    assert value(gw, "SELECT 1 AS file, file + 1 /* disk() */") == "1\t2"


def test_inline_values_are_data_and_nothing_after_them_runs(gw, database, tmp_path):
    """INSERT ... VALUES sent as text: the engine would run whatever follows a ';' in the data as
    another statement, past every check; the gateway streams the data as data instead."""
    target = tmp_path / "smuggled"
    reply = sql(gw, f"INSERT INTO {database}.s VALUES ('a'); SELECT 1 INTO OUTFILE '{target}'")
    assert reply.code == 62 and "Multi-statements are not allowed" in reply.text, reply.text
    assert not target.exists() and value(gw, f"SELECT count() FROM {database}.s") == "0"
    assert sql(gw, f"INSERT INTO {database}.s (line) VALUES ('x; y'), ('(z);');").status == 200
    assert sql(gw, f"insert into {database}.s values('w')").status == 200
    assert value(gw, f"SELECT groupArray(line) FROM (SELECT line FROM {database}.s ORDER BY line)") == "['(z);','w','x; y']"
