"""Kafka client factories and offset helpers shared by the API, the loader, replays and the DAGs.

The one place a client's config is built: the bootstrap list and the security settings (protocol,
SASL mechanism and login, the CA for TLS) come from ``Settings`` for every client, whether
confluent-kafka (``security_config``) or kafka-python (``python_admin``); Airflow's Kafka connection
carries the same keys in its extras (``connection_extra`` and back, ``settings_from_extra``).

Producers use librdkafka's ``murmur2_random`` partitioner: the same partition for a key as Java
clients and Kafka's own tools pick, so a device's scans land in one partition whichever client
wrote them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from quacknet.errors import InvalidInput, Unavailable
from quacknet.retry import Backoff
from quacknet.settings import Settings

_rdkafka_log = logging.getLogger("librdkafka")


def security_config(settings: Settings) -> dict[str, str]:
    """librdkafka's security keys for the settings (also the Kafka connection's extras in Airflow)."""
    config = {"security.protocol": settings.kafka_security_protocol}
    if settings.kafka_sasl:
        config.update({"sasl.mechanism": settings.kafka_sasl_mechanism, "sasl.username": settings.kafka_username,
                       "sasl.password": settings.kafka_password.get_secret_value()})
    if settings.kafka_tls and settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    return config


def connection_extra(settings: Settings) -> dict[str, str]:
    """An Airflow Kafka connection's extras for the settings: the provider's AdminClient takes them as its
    config, and ``settings_from_extra`` reads them back for QuackNet's own clients in a task."""
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, **security_config(settings)}


_EXTRA_TO_SETTINGS = {"bootstrap.servers": "kafka_bootstrap_servers", "security.protocol": "kafka_security_protocol",
                      "sasl.mechanism": "kafka_sasl_mechanism", "sasl.mechanisms": "kafka_sasl_mechanism",
                      "sasl.username": "kafka_username", "sasl.password": "kafka_password",
                      "ssl.ca.location": "kafka_ssl_ca_location"}


def settings_from_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """Settings fields from a Kafka connection's extras (librdkafka's keys), every security field set
    (to its default when absent), so nothing of the task's environment mixes in."""
    fields = {"kafka_security_protocol": "PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_username": "",
              "kafka_password": "", "kafka_ssl_ca_location": None}
    for key, value in extra.items():
        if key in _EXTRA_TO_SETTINGS:
            fields[_EXTRA_TO_SETTINGS[key]] = value.upper() if key == "security.protocol" else value
    return fields


def _base(settings: Settings) -> dict[str, Any]:
    # librdkafka's own log lines go through Python logging (structured), not raw stderr.
    return {"bootstrap.servers": settings.kafka_bootstrap_servers, "logger": _rdkafka_log, **security_config(settings)}


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {**_base(settings), "acks": "all", "enable.idempotence": True, "partitioner": "murmur2_random",
            "linger.ms": 5, "compression.type": "lz4", **overrides}


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return {**_base(settings), "group.id": group_id, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed", **overrides}


def producer(settings: Settings, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, **overrides))


def consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(consumer_config(settings, group_id, **overrides))


def admin(settings: Settings, **overrides: Any) -> AdminClient:
    return AdminClient({**_base(settings), **overrides})


def python_admin(settings: Settings, **overrides: Any):
    """kafka-python's admin client, for the calls confluent-kafka lacks (DescribeLogDirs,
    DescribeQuorum, partition reassignment). Close it after use."""
    from kafka.admin import KafkaAdminClient

    # its INFO lines narrate every connection and SASL exchange, burying a task's own lines; warnings stay
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger("kafka").getEffectiveLevel()))
    return KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
                            **python_security_config(settings), **overrides)


def python_security_config(settings: Settings) -> dict[str, Any]:
    """kafka-python's names for the same security settings."""
    config: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_sasl:
        config.update({"sasl_mechanism": settings.kafka_sasl_mechanism, "sasl_plain_username": settings.kafka_username,
                       "sasl_plain_password": settings.kafka_password.get_secret_value()})
    if settings.kafka_tls:
        config["ssl_check_hostname"] = True
        if settings.kafka_ssl_ca_location:
            config["ssl_cafile"] = str(settings.kafka_ssl_ca_location)
    return config


def reassign_partitions(settings: Settings, topic: str, plan: dict[int, list[int]], timeout_s: float = 60) -> None:
    """Move ``topic``'s partitions to the replica lists of ``plan`` and wait until Kafka has finished
    (the new replicas caught up and joined the ISR); Unavailable if it has not within ``timeout_s``."""
    from kafka import TopicPartition as PyTopicPartition

    client = python_admin(settings, client_id="quacknet-reassign")
    try:
        refused = {tp.partition: err for tp, err in client.alter_partition_reassignments(
            {PyTopicPartition(topic, p): replicas for p, replicas in plan.items()}, timeout_ms=int(timeout_s * 1000)).items()
            if err is not None}
        if refused:
            raise Unavailable(f"Kafka refused to reassign {topic} partitions {refused}")
        deadline = time.monotonic() + timeout_s
        while pending := client.list_partition_reassignments({topic: list(plan)}):
            if time.monotonic() > deadline:
                raise Unavailable(f"reassignment of {topic} partitions {sorted(tp.partition for tp in pending)} "
                                  f"still running after {timeout_s:.0f}s (it goes on in the cluster)")
            time.sleep(0.5)
    finally:
        client.close()


@dataclass(frozen=True)
class PartitionOffsets:
    partition: int
    committed: int | None  # None: the group has committed nothing here
    low: int
    high: int

    @property
    def lag(self) -> int:
        """Retained messages the group has not read; from the earliest retained one if it committed nothing."""
        position = self.committed if self.committed is not None else self.low
        return max(0, self.high - max(position, self.low))


def resolve_partitions(consumer: Consumer, topic: str, wanted: list[int] | None = None,
                       timeout_s: float = 10) -> list[int]:
    """The partitions of ``topic`` to act on: ``wanted`` (each must exist), or all of them."""
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as exc:
        raise Unavailable(f"Kafka did not answer for topic {topic}: {exc}") from exc
    if meta is None or (meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise InvalidInput(f"topic {topic} does not exist")
    if meta.error is not None:
        raise Unavailable(f"Kafka has no usable metadata for topic {topic}: {meta.error.str()}")
    unknown = sorted(set(wanted or ()) - set(meta.partitions))
    if unknown:
        raise InvalidInput(f"topic {topic} has no partition(s) {unknown} (it has 0..{len(meta.partitions) - 1})")
    return sorted(wanted) if wanted else sorted(meta.partitions)


def partition_offsets(consumer: Consumer, topic: str, partitions: list[int] | None = None,
                      timeout_s: float = 10) -> list[PartitionOffsets]:
    """Per partition of ``topic`` (or of ``partitions``): what the consumer's group has committed,
    and the log's watermarks."""
    parts = resolve_partitions(consumer, topic, partitions, timeout_s)
    committed = committed_offsets(consumer, [TopicPartition(topic, p) for p in parts], timeout_s)
    return [PartitionOffsets(tp.partition, tp.offset if tp.offset >= 0 else None,
                             *consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout_s))
            for tp in committed]


# The group coordinator is moving or loading (a fresh cluster, a broker lost): ask again shortly.
COORDINATOR_MOVING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                      KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._WAIT_COORD, KafkaError._TIMED_OUT}


def committed_offsets(consumer: Consumer, partitions: list[TopicPartition], timeout_s: float = 10) -> list[TopicPartition]:
    """The consumer's group's committed offsets, asked again while the group's coordinator is moving
    (a broker just started or failed over); ``Unavailable`` if it has not answered within ``timeout_s``."""
    backoff = Backoff(0.2, 2.0, deadline_s=timeout_s)
    while True:
        try:
            return consumer.committed(partitions, timeout=max(1.0, timeout_s))
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is None or error.code() not in COORDINATOR_MOVING:
                raise
            if not backoff.sleep():
                raise Unavailable(f"Kafka's group coordinator did not answer for committed offsets: {error.str()}") from exc


def timestamp_at(consumer: Consumer, topic: str, partition: int, offset: int, timeout_s: float = 10) -> int | None:
    """The timestamp (ms) of the message at ``offset``, read by assigning the consumer there for a
    moment; None when it cannot be read in time."""
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg.timestamp()[1]
        return None
    finally:
        consumer.unassign()
