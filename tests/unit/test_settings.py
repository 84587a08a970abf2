import pytest
from pydantic import ValidationError

from quacknet.settings import Settings


def test_defaults_are_the_documented_loopback_ports(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("QUACKNET_"):
            monkeypatch.delenv(key)
    s = Settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert (s.kafka_port, s.kafka_controller_port, s.clickhouse_port) == (9092, 9093, 8123)
    assert s.kafka_log_retention_hours == 168


def test_env_overrides_and_derived_values(monkeypatch, tmp_path):
    monkeypatch.setenv("QUACKNET_HOME", str(tmp_path))
    monkeypatch.setenv("QUACKNET_KAFKA_PORT", "19092")
    monkeypatch.setenv("QUACKNET_CLICKHOUSE_URL", "http://127.0.0.1:18123")
    monkeypatch.delenv("QUACKNET_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    s = Settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert s.clickhouse_port == 18123
    assert s.data_dir("kafka") == tmp_path / "data" / "kafka"
    assert s.run_dir == tmp_path / "run" and s.log_dir == tmp_path / "logs"


@pytest.mark.parametrize("text,expected", [("true", True), ("0", False), ("no", False), ("ON", True)])
def test_booleans_are_parsed_explicitly(monkeypatch, text, expected):
    monkeypatch.setenv("QUACKNET_LOG_JSON", text)
    assert Settings().log_json is expected


def test_an_ambiguous_boolean_is_an_error_not_true(monkeypatch):
    monkeypatch.setenv("QUACKNET_LOG_JSON", "maybe")
    with pytest.raises(ValidationError, match="log_json"):
        Settings()


def test_bad_clickhouse_url_is_rejected(monkeypatch):
    monkeypatch.setenv("QUACKNET_CLICKHOUSE_URL", "clickhouse:8123")
    with pytest.raises(ValidationError, match="QUACKNET_CLICKHOUSE_URL"):
        Settings()


def test_to_env_rebuilds_the_same_settings(monkeypatch, tmp_path):
    original = Settings(home=tmp_path, kafka_port=19092, clickhouse_password="s3cret", log_json=True)
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings() == original
