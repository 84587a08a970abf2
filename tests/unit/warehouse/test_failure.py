"""A ClickHouse error becomes QuackNet's kind: outages retry, refusals stop."""

from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError, ProgrammingError

from quacknet import warehouse
from quacknet.errors import Unavailable


def test_transport_failures_and_overload_are_unavailable():
    for exc in (OperationalError("Network Error: Connection refused"),
                DatabaseError("HTTP driver received HTTP status 502"),
                DatabaseError("something without a status"),
                DatabaseError("Code: 252. Too many parts", code=252, name="TOO_MANY_PARTS"),
                DatabaseError("Code: 241. Memory limit", code=241, name="MEMORY_LIMIT_EXCEEDED"),
                DatabaseError("Code: 999. Keeper", code=999)):
        kind = warehouse.failure(exc, "storing 5 messages into db.t")
        assert isinstance(kind, Unavailable) and kind.retriable, exc
        assert "storing 5 messages into db.t" in str(kind)


def test_refusals_name_the_code_and_keep_the_servers_words():
    exc = DatabaseError("Code: 16. DB::Exception: No such column rsrq in table db.scans_store. (NO_SUCH_COLUMN_IN_TABLE)",
                        code=16, name="NO_SUCH_COLUMN_IN_TABLE")
    kind = warehouse.failure(exc, "storing 5 messages into db.scans_store")
    assert isinstance(kind, warehouse.Refused) and not kind.retriable
    assert "(16, NO_SUCH_COLUMN_IN_TABLE)" in str(kind) and "rsrq" in str(kind)
    assert isinstance(warehouse.failure(DatabaseError("Code: 516. Authentication failed", code=516), "connecting"),
                      warehouse.Refused)


def test_the_clients_own_errors_and_a_proxys_4xx_are_refusals():
    for exc in (ProgrammingError("Unrecognized column 'source' in table db.load_ledger"),
                DataError("cannot serialize"),
                DatabaseError("HTTP driver received HTTP status 403")):
        assert isinstance(warehouse.failure(exc, "storing"), warehouse.Refused), exc
