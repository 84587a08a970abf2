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


def test_replication_follows_the_cluster_three_copies_two_in_sync():
    from quacknet.topics import replication

    assert [replication(n) for n in (1, 2, 3, 5)] == [(1, 1), (2, 1), (3, 2), (3, 2)]


def test_the_declaration_on_three_brokers_asks_three_copies_and_two_in_sync(tmp_path):
    for spec in specs(Settings(home=tmp_path), brokers=3):
        assert spec.replication_factor == 3 and spec.configs["min.insync.replicas"] == "2"
    assert {s.replication_factor for s in specs(Settings(home=tmp_path))} == {1}


def test_a_replication_below_the_declaration_is_raised_and_one_above_only_reported():
    spec = TopicSpec("t", 3, {}, replication_factor=3)
    [low] = diff(spec, TopicState(3, {}, {0: [1], 1: [2, 3, 1], 2: [3]}))
    assert (low.action, low.detail) == ("reassign", "replication of partition(s) 0, 2: 1 -> 3")
    [high] = diff(TopicSpec("t", 3, {}, replication_factor=2), TopicState(3, {}, {0: [1, 2, 3], 1: [2, 3], 2: [3, 1]}))
    assert high.action == "report" and "partition(s) 0 is 3" in high.detail and "left as it is" in high.detail
    assert diff(spec, TopicState(3, {}, {0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]})) == []


def test_a_reassignment_keeps_each_leader_first_and_spreads_the_new_copies():
    from quacknet.topics import reassignment

    plan = reassignment({0: [1], 1: [2], 2: [3], 3: [1], 4: [2], 5: [3]}, 3, [1, 2, 3])
    assert all(plan[p][0] == r for p, r in {0: 1, 1: 2, 2: 3, 3: 1, 4: 2, 5: 3}.items())
    assert all(sorted(r) == [1, 2, 3] for r in plan.values())
    assert reassignment({0: [1, 2, 3]}, 3, [1, 2, 3]) == {}  # nothing to move
    assert reassignment({0: [2]}, 2, [1, 2, 3])[0][0] == 2
    with pytest.raises(TopicError, match="needs 3 brokers; 2 answer"):
        reassignment({0: [1]}, 3, [1, 2])
