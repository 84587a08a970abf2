import re

import pytest

from devtools import kafka
from devtools.settings import DevSettings


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_broker_settings_follow_the_article_lessons(tmp_path):
    props = _props(kafka.server_properties(DevSettings(home=tmp_path)))
    assert props["process.roles"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "zookeeper.connect" not in props
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.retention.hours"] == "168"
    assert int(props["log.retention.bytes"]) > 0  # the disk bound the article's author lacked
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["log.dirs"].startswith(str(tmp_path))


def test_cluster_ids_look_like_kafka_uuids():
    ids = {kafka.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)


def test_tools_run_on_the_project_classpath(tmp_path):
    cmd = kafka.tool_command(DevSettings(home=tmp_path), "kafka-consumer-groups", ["--list"])
    assert cmd[-2:] == ["org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--list"]
    assert str(tmp_path / "lib" / "kafka-4.4.0" / "*") in cmd
    with pytest.raises(KeyError, match="unknown Kafka tool"):
        kafka.tool_command(DevSettings(home=tmp_path), "kafka-nope", [])
