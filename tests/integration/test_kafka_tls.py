"""QUACKNET_KAFKA_SECURITY_PROTOCOL=SASL_SSL: the local broker's client listener speaks SCRAM over TLS
with generated certificates; every kind of client (confluent-kafka, kafka-python, Kafka's Java tools)
gets in with the CA, and none without it, nor in clear text. A broker of its own, on its own ports."""

from __future__ import annotations

import logging
import stat

import pytest
from confluent_kafka import KafkaException

from devtools import kafka as devkafka
from devtools.cli import ensure_services, stop_services
from devtools.services import KAFKA
from devtools.settings import DevSettings
from quacknet import kafka as qkafka
from quacknet import topics
from quacknet.ops import audit
from tests.support.stack import own_ports

_quiet = logging.getLogger("tests.tls")
_quiet.setLevel(logging.CRITICAL)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    settings = own_ports(DevSettings(), tmp_path_factory.mktemp("tls") / "qn", kafka_nodes=1, kafka_security_protocol="SASL_SSL")
    settings = settings.model_copy(update={"kafka_ssl_ca_location": settings.kafka_tls_dir / "ca.pem"})
    try:
        ensure_services(settings, [KAFKA], echo=lambda line: None)
        yield settings
    finally:
        stop_services(settings, [KAFKA], echo=lambda line: None)


def test_the_listener_speaks_sasl_ssl_with_generated_certificates(tls_broker):
    settings = tls_broker
    props = dict(line.split("=", 1) for line in (devkafka.node_dir(settings, 1) / "server.properties").read_text().splitlines())
    assert props["listener.security.protocol.map"].startswith(f"{devkafka.CLIENT}:SASL_SSL")
    keystore = settings.kafka_tls_dir / "broker.p12"
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    assert "BEGIN CERTIFICATE" in (settings.kafka_tls_dir / "ca.pem").read_text()
    assert stat.S_IMODE((devkafka.node_dir(settings, 1) / "server.properties").stat().st_mode) == 0o600  # holds passwords


def test_every_client_gets_in_over_tls_with_the_ca(tls_broker):
    settings = tls_broker
    admin = qkafka.admin(settings, logger=_quiet)
    topics.reconcile(admin, topics.specs(settings))
    reports = []
    producer = qkafka.producer(settings.as_kafka_service("api"), logger=_quiet)  # the API's principal and ACLs, over TLS
    producer.produce(settings.scans_topic, key=b"k", value=b"v", on_delivery=lambda err, msg: reports.append(err))
    assert producer.flush(20) == 0 and reports == [None]
    assert audit.log_dirs(settings)[0]["log_dirs"]  # kafka-python with the CA file
    listed = devkafka.run_tool(settings, "kafka-topics", ["--bootstrap-server", settings.kafka_bootstrap_servers, "--list"])
    assert listed.returncode == 0 and settings.scans_topic in listed.stdout, listed.stderr[-2000:]


def test_no_client_gets_in_without_the_ca_or_in_clear_text(tls_broker):
    settings = tls_broker
    untrusting = settings.model_copy(update={"kafka_ssl_ca_location": None})  # the system's CAs never signed it
    with pytest.raises(KafkaException):
        qkafka.admin(untrusting, logger=_quiet).list_topics(timeout=5)
    clear = settings.model_copy(update={"kafka_security_protocol": "SASL_PLAINTEXT"})
    with pytest.raises(KafkaException):
        qkafka.admin(clear, logger=_quiet).list_topics(timeout=5)
