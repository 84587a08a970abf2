"""The local cluster admits only its own services: no login (or a wrong one) gets nothing, and each
service's principal may do what it needs (quacknet.acls) and is refused the rest, by the broker."""

from __future__ import annotations

import logging
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from devtools import kafka as devkafka
from quacknet import kafka as qkafka
from quacknet.ops import audit

_quiet = logging.getLogger("tests.security")
_quiet.setLevel(logging.CRITICAL)


def _produce(settings, topic: str) -> KafkaError | None:
    """One message as the settings' principal; the delivery report's error (None: written)."""
    producer = qkafka.producer(settings, logger=_quiet, **{"message.timeout.ms": 15000})
    reports = []
    producer.produce(topic, key=b"k", value=b"v", on_delivery=lambda err, msg: reports.append(err))
    producer.flush(20)
    assert len(reports) == 1, "no delivery report"
    return reports[0]


def _consume(settings, group: str, topic: str, commit: bool = False) -> tuple[int, KafkaError | None]:
    """Read the topic from its start as the settings' principal in ``group``: (messages, first error)."""
    partitions = settings.scans_partitions if topic == settings.scans_topic else 3  # the lsettings DLQ has 3
    consumer = qkafka.consumer(settings, group, logger=_quiet)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got, error = 0, None
        for _ in range(8):
            for msg in consumer.consume(100, timeout=1):
                if msg.error() is None:
                    got += 1
                elif msg.error().code() != KafkaError._PARTITION_EOF:
                    error = error or msg.error()
            if got or error:
                break
        if commit and got:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as exc:
                error = exc.args[0]
        return got, error
    finally:
        consumer.close()


def _code(error) -> int | None:
    return None if error is None else error.code()


def test_a_client_without_a_login_or_with_a_wrong_one_is_refused(stack, tmp_path):
    assert qkafka.admin(stack, logger=_quiet).list_topics(timeout=10).brokers  # the operators' login: in
    anonymous = AdminClient({"bootstrap.servers": stack.kafka_bootstrap_servers, "logger": _quiet})
    with pytest.raises(KafkaException):
        anonymous.list_topics(timeout=5)
    wrong = stack.model_copy(update={"kafka_password": stack.kafka_password.__class__("not-the-password")})
    with pytest.raises(KafkaException):
        qkafka.admin(wrong, logger=_quiet).list_topics(timeout=5)

    from kafka.errors import KafkaError as PyKafkaError
    with pytest.raises(PyKafkaError):  # the audit's kafka-python client, too
        qkafka.python_admin(wrong, request_timeout_ms=5000, api_version_auto_timeout_ms=5000).close()
    # and Kafka's own tools with a config that has no login (and gives up in seconds, not the default minute)
    config = tmp_path / "anonymous.properties"
    config.write_text("default.api.timeout.ms=8000\nrequest.timeout.ms=4000\n")
    done = devkafka.run_tool(stack, "kafka-topics", ["--bootstrap-server", stack.kafka_bootstrap_servers, "--list",
                                                     "--command-config", str(config)], timeout=60)
    assert done.returncode != 0 and "Timed out" in done.stderr + done.stdout, done.stderr[-2000:]
    assert devkafka.run_tool(stack, "kafka-topics", ["--bootstrap-server", stack.kafka_bootstrap_servers, "--list"]).returncode == 0


def test_each_service_may_do_what_it_needs_and_is_refused_the_rest(lsettings, admin):
    scans, dlq, group = lsettings.scans_topic, lsettings.dlq_topic, lsettings.loader_group
    api, loader, airflow = (lsettings.as_kafka_service(s) for s in ("api", "loader", "airflow"))
    denied_topic, denied_group = KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED
    with devkafka.granted(lsettings):
        # the API writes the scans topic, and nothing else
        assert _produce(api, scans) is None
        assert _code(_produce(api, dlq)) == denied_topic
        assert _code(_consume(api, group, scans)[1]) in (denied_topic, denied_group)
        api_admin = qkafka.admin(api, logger=_quiet)
        name = f"evil.{uuid.uuid4().hex[:8]}"
        with pytest.raises(KafkaException) as refused:
            api_admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=20)
        assert refused.value.args[0].code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED)

        # the loader reads the scans topic in its group and commits there, writes the DLQ; nothing else
        got, error = _consume(loader, group, scans, commit=True)
        assert (got, error) == (1, None)
        assert _produce(loader, dlq) is None
        assert _code(_produce(loader, scans)) == denied_topic
        assert _code(_consume(loader, f"other-{group}", scans)[1]) == denied_group
        assert _code(_consume(loader, group, dlq)[1]) == denied_topic

        # Airflow's tasks administer the owned topics and read any group's offsets; they write no scans
        assert _consume(airflow, f"replay-{uuid.uuid4().hex[:8]}", scans)[0] == 1
        assert _produce(airflow, dlq) is None
        assert _code(_produce(airflow, scans)) == denied_topic
        air_admin = qkafka.admin(airflow, logger=_quiet)
        resource = ConfigResource(ConfigResource.Type.TOPIC, scans)
        assert "retention.ms" in air_admin.describe_configs([resource])[resource].result(timeout=20)
        assert audit.log_dirs(airflow)  # DescribeLogDirs through kafka-python, as the audit calls it
        with pytest.raises(KafkaException) as refused:
            air_admin.delete_topics([scans], operation_timeout=10)[scans].result(timeout=20)
        assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # the grants were the test's own: gone again, and the loader with them
    assert _code(_consume(loader, group, scans)[1]) in (denied_topic, denied_group)
