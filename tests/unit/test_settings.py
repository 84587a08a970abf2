import os

import pytest
from pydantic import ValidationError

from quacknet.settings import HOUR_MS, Settings


@pytest.fixture
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("QUACKNET_"):
            monkeypatch.delenv(key)


def test_defaults_are_the_documented_loopback_addresses_and_the_declared_retention(clean_env):
    s = Settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.clickhouse_port == 8123
    assert s.scans_retention_hours == 168 and s.scans_retention_ms == 168 * HOUR_MS
    assert (s.scans_topic, s.scans_partitions, s.loader_group) == ("netintel.scan.events", 6, "clickhouse-loader")


def test_production_settings_know_nothing_of_the_dev_stack():
    dev_only = {"java", "maven", "kafka_port", "kafka_heap", "gateway_threads", "airflow_port", "api_port", "lib"}
    assert not dev_only & set(Settings.model_fields)


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
    original = Settings(home=tmp_path, kafka_bootstrap_servers="kafka:29092", clickhouse_password="s3cret", log_json=True)
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings() == original
