import pytest

from quacknet.settings import Settings
from quacknet.topics import TopicError, TopicSpec, TopicState, diff, specs

SPEC = TopicSpec("t", 6, {"retention.ms": "604800000", "message.timestamp.type": "LogAppendTime"})


def test_the_scan_topic_follows_broker_time_and_bounded_retention(tmp_path):
    scans, dlq = specs(Settings(home=tmp_path))
    assert (scans.name, scans.partitions) == ("netintel.scan.events", 6)
    assert scans.configs["message.timestamp.type"] == "LogAppendTime"
    assert scans.configs["retention.ms"] == str(168 * 3600 * 1000) and int(scans.configs["retention.bytes"]) > 0
    assert dlq.name == "netintel.scan.events.dlq"


def test_missing_topic_is_created():
    [change] = diff(SPEC, None)
    assert change.action == "create" and "6 partitions" in change.detail


def test_matching_topic_needs_nothing():
    assert diff(SPEC, TopicState(6, {**SPEC.configs, "cleanup.policy": "delete"})) == []


def test_partitions_grow_and_drifted_configs_come_back():
    changes = diff(SPEC, TopicState(3, {"retention.ms": "3600000", "message.timestamp.type": "LogAppendTime"}))
    assert [(c.action, c.detail) for c in changes] == [
        ("add_partitions", "3 -> 6"), ("alter_config", "retention.ms: 3600000 -> 604800000")]


def test_a_topic_is_never_shrunk():
    with pytest.raises(TopicError, match="cannot shrink"):
        diff(SPEC, TopicState(12, dict(SPEC.configs)))
