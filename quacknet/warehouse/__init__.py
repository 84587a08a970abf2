"""ClickHouse: the client factory, what a failure means, versioned migrations, shipped queries.

Everything goes through clickhouse-connect at ``QUACKNET_CLICKHOUSE_URL``: a clickhouse-server
in production and compose, the local development gateway in the dev stack; this package cannot
tell which.
"""

from __future__ import annotations

import re

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from clickhouse_connect.driver.exceptions import Error as ClickHouseDriverError

from quacknet.errors import Conflict, QuackNetError, SchemaBehind, Unavailable
from quacknet.settings import Settings

# Server errors that pass by themselves (ClickHouse's ErrorCodes): overload, timeouts, lost
# connections, a replica without Keeper for a moment. Anything else the server names (a missing
# column, a type mismatch, bad credentials) fails the same way on every retry.
RETRIABLE_CODES: dict[int, str] = {
    159: "TIMEOUT_EXCEEDED", 160: "TOO_SLOW", 173: "CANNOT_ALLOCATE_MEMORY", 201: "QUOTA_EXCEEDED",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES", 203: "NO_FREE_CONNECTION", 209: "SOCKET_TIMEOUT", 210: "NETWORK_ERROR",
    225: "NO_ZOOKEEPER", 236: "ABORTED", 241: "MEMORY_LIMIT_EXCEEDED", 242: "TABLE_IS_READ_ONLY",
    252: "TOO_MANY_PARTS", 279: "ALL_CONNECTION_TRIES_FAILED", 285: "TOO_FEW_LIVE_REPLICAS",
    286: "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE", 319: "UNKNOWN_STATUS_OF_INSERT", 373: "SESSION_IS_LOCKED",
    394: "QUERY_WAS_CANCELLED", 439: "CANNOT_SCHEDULE_TASK", 999: "KEEPER_EXCEPTION", 1000: "POCO_EXCEPTION",
}
_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")


class Refused(Conflict):
    """ClickHouse understood and refused (schema, types, permissions): retrying cannot help."""


def client(settings: Settings, database: str | None = None, **kwargs) -> Client:
    """A connected client; ``Unavailable`` or ``Refused`` (bad credentials) when it cannot be had."""
    try:
        return clickhouse_connect.get_client(
            dsn=settings.clickhouse_url, username=settings.clickhouse_user,
            password=settings.clickhouse_password.get_secret_value(), database=database or "", **kwargs,
        )
    except ClickHouseDriverError as exc:
        raise failure(exc, f"connecting to {settings.clickhouse_url}") from exc


def failure(exc: Exception, doing: str) -> QuackNetError:
    """A clickhouse-connect error as QuackNet's kind: ``Unavailable`` (retry) or ``Refused`` (stop).

    Network errors are transport: retry. A server answer carries its code: retry the codes that
    pass by themselves. An answer without a code (a proxy in between) is retried on a 5xx only.
    The client's own errors (an unknown column name, data it cannot serialize) are refusals."""
    code, name = getattr(exc, "code", None), getattr(exc, "name", None)
    text = " ".join(str(exc).split())[:1000]
    if isinstance(exc, OperationalError) or code in RETRIABLE_CODES:
        return Unavailable(f"ClickHouse is unavailable while {doing}: {text}")
    if type(exc) is DatabaseError and code is None:
        status = _HTTP_STATUS.search(str(exc))
        if status is None or status.group(1).startswith("5"):
            return Unavailable(f"ClickHouse is unavailable while {doing}: {text}")
    label = ", ".join(str(part) for part in (code, name) if part is not None) or type(exc).__name__
    return Refused(f"ClickHouse refused {doing} ({label}): {text}")


__all__ = ["ClickHouseDriverError", "Refused", "SchemaBehind", "client", "failure"]
