import os

from devtools.settings import PROJECT_ROOT, DevSettings
from quacknet.settings import Settings


def test_defaults_are_the_documented_loopback_ports(monkeypatch):
    for key in list(os.environ):
        if key.startswith("QUACKNET_"):
            monkeypatch.delenv(key)
    s = DevSettings()
    assert isinstance(s, Settings)  # handed to product code unchanged
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert (s.kafka_port, s.kafka_controller_port, s.clickhouse_port) == (9092, 9093, 8123)
    assert s.scans_retention_hours == 168
    assert s.home == PROJECT_ROOT / ".quacknet"


def test_env_overrides_and_derived_values(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACKNET_HOME", str(tmp_path))
    monkeypatch.setenv("QUACKNET_KAFKA_PORT", "19092")
    monkeypatch.setenv("QUACKNET_CLICKHOUSE_URL", "http://127.0.0.1:18123")
    monkeypatch.delenv("QUACKNET_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    s = DevSettings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert s.clickhouse_port == 18123
    assert s.data_dir("kafka") == tmp_path / "data" / "kafka"
    assert s.run_dir == tmp_path / "run" and s.log_dir == tmp_path / "logs"


def test_to_env_rebuilds_the_same_settings_in_a_child(monkeypatch, tmp_path):
    original = DevSettings(home=tmp_path, kafka_port=19092, clickhouse_password="s3cret", log_json=True)
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert DevSettings() == original
    assert Settings().kafka_bootstrap_servers == "127.0.0.1:19092"  # the product process sees the same broker


def test_a_cluster_s_nodes_take_ports_two_apart_from_node_1_s(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("QUACKNET_"):
            monkeypatch.delenv(key)
    s = DevSettings(home=tmp_path, kafka_nodes=3)
    assert [s.kafka_node_ports(n) for n in (1, 2, 3)] == [(9092, 9093), (9094, 9095), (9096, 9097)]
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    moved = DevSettings(home=tmp_path, kafka_nodes=3, kafka_port=49092, kafka_controller_port=49093)
    assert moved.kafka_bootstrap_servers == "127.0.0.1:49092,127.0.0.1:49094,127.0.0.1:49096"  # a stack of its own
    assert DevSettings(home=tmp_path).kafka_bootstrap_servers == "127.0.0.1:9092"  # one node stays the default


def test_node_ports_that_would_collide_are_refused(tmp_path):
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="overlapping ports"):
        DevSettings(home=tmp_path, kafka_nodes=3, kafka_port=9092, kafka_controller_port=9094)
