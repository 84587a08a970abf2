import json
import re

import pytest

from devtools import kafka
from devtools.settings import DevSettings
from devtools.supervisor import ServiceError


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_broker_settings_follow_the_article_lessons(tmp_path):
    props = _props(kafka.server_properties(DevSettings(home=tmp_path)))
    assert props["process.roles"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "zookeeper.connect" not in props
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.retention.hours"] == "168"
    assert int(props["log.retention.bytes"]) > 0  # the disk bound the article's author lacked
    assert props["listeners"] == "CLIENT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["log.dirs"].startswith(str(tmp_path))


def test_only_the_clusters_own_principals_get_in(tmp_path):
    settings = DevSettings(home=tmp_path)
    props = _props(kafka.server_properties(settings))
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    assert props["listener.name.client.sasl.enabled.mechanisms"] == props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == f"User:broker;User:{settings.kafka_username}" and settings.kafka_username == "quacknet-admin"
    assert settings.kafka_broker_password.get_secret_value() in props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert "PLAINTEXT:PLAINTEXT" not in props["listener.security.protocol.map"]  # no listener without a login


def test_format_salts_the_scram_logins_so_no_password_is_on_a_command_line():
    import base64
    import hashlib

    cred = kafka.scram_credential("broker", "s3cret", iterations=4096)
    found = dict(re.findall(r'(\w+)="?([^",\]]*)"?', cred.split("=[", 1)[1]))
    assert cred.startswith("SCRAM-SHA-512=[name=broker,iterations=4096,") and "s3cret" not in cred
    salted = hashlib.pbkdf2_hmac("sha512", b"s3cret", base64.b64decode(found["salt"]), 4096)
    assert base64.b64decode(found["saltedpassword"]) == salted


def test_cluster_ids_look_like_kafka_uuids():
    ids = {kafka.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)


def test_tools_run_on_the_project_classpath(tmp_path):
    settings = DevSettings(home=tmp_path)
    cmd = kafka.tool_command(settings, "kafka-consumer-groups", ["--list"])
    at = cmd.index("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand")
    assert cmd[at + 1:] == ["--command-config", str(kafka.client_properties(settings)), "--list"]  # logged in as the operators
    config = kafka.client_properties(settings).read_text()
    assert "security.protocol=SASL_PLAINTEXT" in config and f'username="{settings.kafka_username}"' in config
    assert (kafka.client_properties(settings).stat().st_mode & 0o777) == 0o600
    assert str(tmp_path / "lib" / "kafka-4.4.0" / "*") in cmd
    own = kafka.tool_command(settings, "kafka-topics", ["--command-config", "mine.properties", "--list"])
    assert own.count("--command-config") == 1  # a config given explicitly is used as it is
    with pytest.raises(KeyError, match="unknown Kafka tool"):
        kafka.tool_command(DevSettings(home=tmp_path), "kafka-nope", [])


def test_a_three_node_cluster_has_three_voters_and_replicates_its_internal_topics(tmp_path):
    settings = DevSettings(home=tmp_path, kafka_nodes=3, kafka_port=9092, kafka_controller_port=9093)
    props = _props(kafka.server_properties(settings, node=2))
    assert props["node.id"] == "2" and props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert props["listeners"] == "CLIENT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert props["log.dirs"] == str(tmp_path / "data" / "kafka-2" / "logs")
    assert props["offsets.topic.replication.factor"] == props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    one = _props(kafka.server_properties(DevSettings(home=tmp_path), node=1))
    assert one["offsets.topic.replication.factor"] == "1" and one["controller.quorum.voters"].count("@") == 1


def test_switching_a_state_dir_between_one_and_three_nodes_stops_with_what_to_do(tmp_path):
    one = DevSettings(home=tmp_path)
    kafka.node_dir(one, 1).mkdir(parents=True)
    (kafka.node_dir(one, 1) / kafka.LAYOUT).write_text(json.dumps({"nodes": 1, "cluster_id": "x",
                                                                   "logins": kafka._logins_digest(one)}))
    assert kafka.check_layout(one)["nodes"] == 1
    with pytest.raises(ServiceError) as err:
        kafka.check_layout(DevSettings(home=tmp_path, kafka_nodes=3))
    assert "holds a 1-node Kafka cluster, but QUACKNET_KAFKA_NODES=3" in str(err.value)
    assert "QUACKNET_HOME" in str(err.value) and "make clean" in str(err.value)


def test_a_one_node_state_dir_of_an_earlier_quacknet_counts_as_one_node(tmp_path):
    settings = DevSettings(home=tmp_path)
    logs = kafka.node_dir(settings, 1) / "logs"
    logs.mkdir(parents=True)
    (logs / "meta.properties").write_text("node.id=1\ncluster.id=abc\nversion=1\n")
    assert kafka.layout(settings)["nodes"] == 1
    with pytest.raises(ServiceError, match="holds a 1-node Kafka cluster"):
        kafka.check_layout(DevSettings(home=tmp_path, kafka_nodes=3))
    assert "logins" not in kafka.check_layout(settings)  # prepare gives it its logins (tests/integration/test_kafka_upgrade.py)


def test_a_cluster_of_several_nodes_formatted_without_logins_says_what_to_do(tmp_path):
    settings = DevSettings(home=tmp_path, kafka_nodes=3)
    kafka.node_dir(settings, 1).mkdir(parents=True)
    (kafka.node_dir(settings, 1) / kafka.LAYOUT).write_text(json.dumps({"nodes": 3, "cluster_id": "x"}))
    with pytest.raises(ServiceError, match="3-node Kafka cluster formatted without logins .* `make clean`"):
        kafka.check_layout(settings)  # only one node can be started alone to take its logins


def test_a_cluster_formatted_with_other_logins_says_so(tmp_path):
    settings = DevSettings(home=tmp_path)
    kafka.node_dir(settings, 1).mkdir(parents=True)
    (kafka.node_dir(settings, 1) / kafka.LAYOUT).write_text(json.dumps({"nodes": 1, "cluster_id": "x", "logins": "0" * 64}))
    with pytest.raises(ServiceError, match="not the ones the cluster .* was formatted with"):
        kafka.check_layout(settings)
