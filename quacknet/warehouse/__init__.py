"""ClickHouse: the client factory, versioned migrations and the queries the platform ships.

Everything goes through clickhouse-connect at ``QUACKNET_CLICKHOUSE_URL``: a clickhouse-server
in production and compose, the local chDB gateway in the dev stack; this package cannot tell.
"""

from __future__ import annotations

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from quacknet.settings import Settings


def client(settings: Settings, database: str | None = None, **kwargs) -> Client:
    return clickhouse_connect.get_client(
        dsn=settings.clickhouse_url, username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(), database=database or "", **kwargs,
    )
