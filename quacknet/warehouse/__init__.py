"""ClickHouse: the client factory, what a failure means, versioned migrations, shipped queries.

Everything goes through clickhouse-connect at ``QUACKNET_CLICKHOUSE_URL``: a clickhouse-server
in production and compose, the local development gateway in the dev stack; this package cannot
tell which.
"""

from __future__ import annotations

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import Error as ClickHouseDriverError
from clickhouse_connect.driver.exceptions import OperationalError

from quacknet.errors import Conflict, QuackNetError, Unavailable
from quacknet.settings import Settings

# Server errors that pass by themselves: overload, timeouts, lost connections, a replica that
# lost Keeper for a moment. Anything else the server names (a missing column, a type mismatch,
# bad credentials) will fail the same way on every retry.
RETRIABLE = frozenset({
    "TIMEOUT_EXCEEDED", "TOO_SLOW", "TOO_MANY_SIMULTANEOUS_QUERIES", "NO_FREE_CONNECTION", "SOCKET_TIMEOUT",
    "NETWORK_ERROR", "ABORTED", "MEMORY_LIMIT_EXCEEDED", "TABLE_IS_READ_ONLY", "TOO_MANY_PARTS",
    "ALL_CONNECTION_TRIES_FAILED", "TOO_FEW_LIVE_REPLICAS", "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE",
    "UNKNOWN_STATUS_OF_INSERT", "QUERY_WAS_CANCELLED", "KEEPER_EXCEPTION", "POCO_EXCEPTION", "SESSION_IS_LOCKED",
    "SERVER_OVERLOADED",
})
RETRIABLE_CODES = frozenset({159, 160, 202, 203, 209, 210, 236, 241, 242, 252, 279, 285, 286, 319, 373, 394, 999, 1000})


class Refused(Conflict):
    """ClickHouse understood and refused (schema, types, permissions): retrying cannot help."""


def client(settings: Settings, database: str | None = None, **kwargs) -> Client:
    return clickhouse_connect.get_client(
        dsn=settings.clickhouse_url, username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(), database=database or "", **kwargs,
    )


def failure(exc: Exception, doing: str) -> QuackNetError:
    """A clickhouse-connect error as QuackNet's kind: ``Unavailable`` (retry) or ``Refused`` (stop).
    A failure with no server code (connection refused, reset, a proxy's 502) is transport: retry."""
    code, name = getattr(exc, "code", None), getattr(exc, "name", None)
    text = " ".join(str(exc).split())[:1000]
    if isinstance(exc, OperationalError) or code is None or name in RETRIABLE or code in RETRIABLE_CODES:
        return Unavailable(f"ClickHouse is unavailable while {doing}: {text}")
    return Refused(f"ClickHouse refused {doing} (code {code}{', ' + name if name else ''}): {text}")


__all__ = ["ClickHouseDriverError", "Refused", "client", "failure"]
