from __future__ import annotations

import clickhouse_connect
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def admin(stack) -> AdminClient:
    return AdminClient({"bootstrap.servers": stack.kafka_bootstrap_servers})


@pytest.fixture
def topic(admin, unique_name):
    """A fresh 6-partition topic for one test, deleted afterwards."""
    name = unique_name.replace("_", ".")
    admin.create_topics([NewTopic(name, num_partitions=6, replication_factor=1)])[name].result(timeout=30)
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


def ch_client(settings, **kwargs):
    return clickhouse_connect.get_client(
        dsn=settings.clickhouse_url, username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(), **kwargs,
    )


@pytest.fixture
def ch(stack):
    client = ch_client(stack)
    yield client
    client.close()


@pytest.fixture
def database(ch, unique_name):
    """A fresh ClickHouse database for one test, dropped afterwards."""
    ch.command(f"CREATE DATABASE {unique_name}")
    yield unique_name
    ch.command(f"DROP DATABASE IF EXISTS {unique_name} SYNC")
