"""Settings for Airflow tasks, built from Airflow connections at task run time (never at parse time).

``kafka_default`` (conn type kafka, extra ``{"bootstrap.servers": ..., "security.protocol": ...,
"sasl.mechanism": ..., "sasl.username": ..., "sasl.password": ..., "ssl.ca.location": ...}``: librdkafka's
keys, which the provider's AdminClient takes as they are) and ``clickhouse_default`` (host, port,
login, password, schema = database) become the same typed ``Settings`` the rest of QuackNet uses, so
the DAGs call exactly the code the CLI and the tests call, with the connection's Kafka principal.
"""

from __future__ import annotations

from quacknet import kafka
from quacknet.errors import InvalidInput
from quacknet.settings import Settings

KAFKA_CONN_ID = "kafka_default"
CLICKHOUSE_CONN_ID = "clickhouse_default"


def settings_from_airflow(kafka_conn_id: str = KAFKA_CONN_ID, clickhouse_conn_id: str = CLICKHOUSE_CONN_ID,
                          get_connection=None) -> Settings:
    """In a task, connections come through the Task SDK; the API server (the plugin) passes
    ``Connection.get_connection_from_secrets``."""
    if get_connection is None:
        from airflow.sdk import BaseHook

        get_connection = BaseHook.get_connection
    kafka_conn = get_connection(kafka_conn_id)
    extra = kafka_conn.extra_dejson
    if not extra.get("bootstrap.servers"):
        raise InvalidInput(f"connection {kafka_conn_id} has no bootstrap.servers in its extra")
    protocol = str(extra.get("security.protocol", "PLAINTEXT")).upper()
    if protocol.startswith("SASL_") and not (extra.get("sasl.username") and extra.get("sasl.password")):
        raise InvalidInput(f"connection {kafka_conn_id}: security.protocol {protocol} needs sasl.username and "
                           "sasl.password in its extra")
    ch = get_connection(clickhouse_conn_id)
    scheme = "https" if ch.extra_dejson.get("secure") else "http"
    overrides = {
        **kafka.settings_from_extra(extra),
        "clickhouse_url": f"{scheme}://{ch.host or '127.0.0.1'}:{ch.port or 8123}",
        "clickhouse_user": ch.login or "default",
        "clickhouse_password": ch.password or "",
    }
    if ch.schema:
        overrides["clickhouse_database"] = ch.schema
    try:
        return Settings(**overrides)
    except ValueError as exc:  # e.g. SASL without a login in the extras
        raise InvalidInput(f"connection {kafka_conn_id}: {exc}") from exc


def kafka_admin(kafka_conn_id: str = KAFKA_CONN_ID):
    """The Kafka provider's AdminClient for a connection (confluent-kafka, with the connection's
    full client config, security settings included)."""
    from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook

    return KafkaAdminClientHook(kafka_config_id=kafka_conn_id).get_conn


def defaults() -> Settings:
    """The settings DAG files read their form defaults from (topic, group, thresholds): the
    environment only, never a connection or the network, so parsing stays side-effect free."""
    return Settings()


# The forms take times as typed text in UTC, never through the date-time picker, which converts
# from the UI's timezone: what the operator reads in the field is what runs.
UTC_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|\+00:00)$"
UTC_TIME_HINT = "In UTC, typed as text, e.g. 2026-11-30T21:00:00Z (the form converts nothing)"
