"""The stack's services for a node count: a cluster's nodes by name, ports and group."""

from devtools import services
from devtools.settings import DevSettings


def test_three_nodes_are_kafka_kafka_2_kafka_3_one_group_before_the_rest(tmp_path):
    settings = DevSettings(home=tmp_path, kafka_nodes=3, kafka_port=49092, kafka_controller_port=49093)
    names = [svc.name for svc in services.stack(settings)]
    assert names[:4] == ["kafka", "kafka-2", "kafka-3", "clickhouse"] and names[-2:] == ["api", "loader"]
    assert {svc.group for svc in services.kafka_nodes(settings)} == {"kafka"}
    assert [svc.ports(settings) for svc in services.kafka_nodes(settings)] == [[49092, 49093], [49094, 49095], [49096, 49097]]
    assert services.kafka_node(1) is services.KAFKA
    assert [svc.name for svc in services.stack(DevSettings(home=tmp_path))][:2] == ["kafka", "clickhouse"]


def test_stop_and_status_include_nodes_that_run_beyond_the_configured_count(tmp_path):
    settings = DevSettings(home=tmp_path)
    settings.run_dir.mkdir(parents=True)
    for name in ("kafka-2", "kafka-3"):
        (settings.run_dir / f"{name}.pid").write_text("1 0\n")
    assert [svc.name for svc in services.by_name(settings, None)][:2] == ["kafka", "clickhouse"]
    assert [svc.name for svc in services.by_name(settings, None, include_running=True)][:4] == [
        "kafka", "kafka-2", "kafka-3", "clickhouse"]


def test_starting_one_node_of_a_cluster_by_name_starts_its_group_and_stopping_one_stops_only_it(tmp_path):
    settings = DevSettings(home=tmp_path, kafka_nodes=3)
    assert [svc.name for svc in services.by_name(settings, ["kafka", "api"], whole_groups=True)] == [
        "kafka", "kafka-2", "kafka-3", "api"]  # a KRaft node alone never finds its quorum
    assert [svc.name for svc in services.by_name(settings, ["kafka-2"])] == ["kafka-2"]  # e.g. to take one broker down
    assert [svc.name for svc in services.by_name(DevSettings(home=tmp_path), ["kafka"], whole_groups=True)] == ["kafka"]
