"""A ClickHouse error becomes QuackNet's kind by its code: outages retry, refusals stop."""

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from quacknet import warehouse
from quacknet.errors import Unavailable


def test_transport_failures_and_overload_are_unavailable():
    for exc in (OperationalError("Connection refused"), DatabaseError("HTTP 502 from a proxy"),
                DatabaseError("Code: 252. Too many parts", code=252, name="TOO_MANY_PARTS"),
                DatabaseError("Code: 241. Memory limit", code=241, name="MEMORY_LIMIT_EXCEEDED"),
                DatabaseError("Code: 999. Keeper", code=999)):
        kind = warehouse.failure(exc, "storing 5 messages into db.t")
        assert isinstance(kind, Unavailable) and kind.retriable
        assert "storing 5 messages into db.t" in str(kind)


def test_refusals_name_the_code_and_keep_the_servers_words():
    exc = DatabaseError("Code: 16. DB::Exception: No such column rsrq in table db.scans_store. (NO_SUCH_COLUMN_IN_TABLE)",
                        code=16, name="NO_SUCH_COLUMN_IN_TABLE")
    kind = warehouse.failure(exc, "storing 5 messages into db.scans_store")
    assert isinstance(kind, warehouse.Refused) and not kind.retriable
    assert "code 16, NO_SUCH_COLUMN_IN_TABLE" in str(kind) and "rsrq" in str(kind)
    auth = warehouse.failure(DatabaseError("Code: 516. Authentication failed", code=516), "connecting")
    assert isinstance(auth, warehouse.Refused)
