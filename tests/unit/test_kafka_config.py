"""Every Kafka client's security comes from the settings, through quacknet.kafka, and back from an
Airflow connection's extras; each service's ACLs are what it needs."""

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from pydantic import ValidationError

from quacknet import acls, kafka
from quacknet.airflow.connections import settings_from_airflow
from quacknet.errors import InvalidInput, Unavailable
from quacknet.settings import Settings

SASL = {"kafka_security_protocol": "SASL_SSL", "kafka_username": "quacknet-api", "kafka_password": "pw",
        "kafka_ssl_ca_location": "/etc/ca.pem"}


def test_every_client_config_carries_the_settings_security(tmp_path):
    settings = Settings(home=tmp_path, **SASL)
    expected = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "quacknet-api",
                "sasl.password": "pw", "ssl.ca.location": "/etc/ca.pem"}
    assert kafka.security_config(settings) == expected
    for config in (kafka.producer_config(settings), kafka.consumer_config(settings, "g")):
        assert expected.items() <= config.items() and config["acks" if "acks" in config else "group.id"]
    assert kafka.python_security_config(settings) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "quacknet-api",
        "sasl_plain_password": "pw", "ssl_check_hostname": True, "ssl_cafile": "/etc/ca.pem"}
    assert kafka.security_config(Settings(home=tmp_path)) == {"security.protocol": "PLAINTEXT"}  # the default: nothing more


def test_sasl_without_a_login_is_refused_at_start(tmp_path):
    with pytest.raises(ValidationError, match="needs QUACKNET_KAFKA_USERNAME and QUACKNET_KAFKA_PASSWORD"):
        Settings(home=tmp_path, kafka_security_protocol="SASL_PLAINTEXT")


def _connection(extra):
    return SimpleNamespace(extra_dejson=extra, host="ch", port=8123, login="u", password="p", schema="quacknet")


def test_an_airflow_connection_carries_the_same_keys_both_ways(monkeypatch, tmp_path):
    settings = Settings(home=tmp_path, kafka_bootstrap_servers="k1:9092,k2:9092", **SASL)
    extra = kafka.connection_extra(settings)
    back = settings_from_airflow(get_connection=lambda conn_id: _connection(extra))
    assert kafka.security_config(back) == kafka.security_config(settings)
    assert back.kafka_bootstrap_servers == "k1:9092,k2:9092"


def test_a_task_takes_the_connections_login_never_the_environments(monkeypatch):
    monkeypatch.setenv("QUACKNET_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("QUACKNET_KAFKA_USERNAME", "someone-else")
    monkeypatch.setenv("QUACKNET_KAFKA_PASSWORD", "theirs")
    plain = settings_from_airflow(get_connection=lambda conn_id: _connection({"bootstrap.servers": "k:9092"}))
    assert kafka.security_config(plain) == {"security.protocol": "PLAINTEXT"}
    with pytest.raises(InvalidInput, match="kafka_default: security.protocol SASL_PLAINTEXT needs sasl.username and "
                                           "sasl.password in its extra"):
        settings_from_airflow(get_connection=lambda conn_id: _connection(
            {"bootstrap.servers": "k:9092", "security.protocol": "sasl_plaintext"}))


def test_each_principal_gets_only_what_its_service_needs(tmp_path):
    settings = Settings(home=tmp_path)
    grants = {(g.principal.removeprefix("User:"), g.resource, g.name, g.operation) for g in acls.grants(settings)}
    api = {g[1:] for g in grants if g[0] == "quacknet-api"}
    assert api == {("TOPIC", "netintel.scan.events", "WRITE"), ("TOPIC", "netintel.scan.events", "DESCRIBE")}
    loader = {g[1:] for g in grants if g[0] == "quacknet-loader"}
    assert loader == {("TOPIC", "netintel.scan.events", "READ"), ("TOPIC", "netintel.scan.events", "DESCRIBE"),
                      ("GROUP", "clickhouse-loader", "READ"),
                      ("TOPIC", "netintel.scan.events.dlq", "WRITE"), ("TOPIC", "netintel.scan.events.dlq", "DESCRIBE")}
    airflow = {g[1:] for g in grants if g[0] == "quacknet-airflow"}
    assert ("TOPIC", "netintel.scan.events", "WRITE") not in airflow  # it never writes scans
    assert {("TOPIC", "netintel.scan.events", "CREATE"), ("TOPIC", "netintel.scan.events.dlq", "ALTER_CONFIGS"),
            ("GROUP", "*", "READ"), ("CLUSTER", "kafka-cluster", "DESCRIBE"), ("CLUSTER", "kafka-cluster", "ALTER")} <= airflow
    assert not {g for g in grants if g[3] in ("ALL", "DELETE", "CLUSTER_ACTION")}
    assert {g[0] for g in grants} == {"quacknet-api", "quacknet-loader", "quacknet-airflow"}


class _Consumer:
    """Answers committed() with the given errors first, then offsets."""

    def __init__(self, *errors):
        self.errors, self.calls = list(errors), 0

    def committed(self, partitions, timeout):
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return partitions


def test_committed_offsets_are_asked_again_while_the_coordinator_moves():
    parts = [TopicPartition("t", 0)]
    moving = _Consumer(KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    assert kafka.committed_offsets(moving, parts, timeout_s=10) == parts and moving.calls == 3
    with pytest.raises(KafkaException):  # anything else is not waited out
        kafka.committed_offsets(_Consumer(KafkaError.GROUP_AUTHORIZATION_FAILED), parts, timeout_s=10)
    with pytest.raises(Unavailable, match="group coordinator did not answer"):
        kafka.committed_offsets(_Consumer(*[KafkaError.NOT_COORDINATOR] * 50), parts, timeout_s=1)
