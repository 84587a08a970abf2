from quacknet.ops import audit
from quacknet.topics import TopicSpec, TopicState

SPEC = TopicSpec("scans", 6, {"retention.ms": "604800000", "retention.bytes": "536870912", "cleanup.policy": "delete"})


def test_retention_as_declared_is_ok_and_a_wrong_one_is_named():
    ok = audit.retention_findings([SPEC], {"scans": TopicState(6, {"retention.ms": "604800000", "retention.bytes": "536870912"})})
    assert [f.ok for f in ok] == [True, True] and audit.violations_message(ok) is None
    bad = audit.retention_findings([SPEC], {"scans": TopicState(6, {"retention.ms": "-1", "retention.bytes": "536870912"})})
    message = audit.violations_message(bad)
    assert message.startswith("1 retention audit violation") and "scans: retention.ms is -1, policy says 604800000" in message


def test_a_missing_topic_is_a_violation_that_says_so():
    findings = audit.retention_findings([SPEC], {})
    assert findings and not any(f.ok for f in findings)
    assert [f.message for f in findings] == ["scans: the topic does not exist (the kafka_topics DAG creates it)"]


def _log_dir(sizes: list[int], total: int = 100 * 2**30, usable: int = 50 * 2**30, error_code: int = 0) -> list[dict]:
    partitions = [{"partition_index": i, "partition_size": s, "offset_lag": 0, "is_future_key": False} for i, s in enumerate(sizes)]
    return [{"broker": 1, "log_dirs": [{"error_code": error_code, "log_dir": "/data/kafka", "total_bytes": total,
                                         "usable_bytes": usable, "topics": [{"name": "scans", "partitions": partitions}]}]}]


def test_disk_use_within_budget_and_free_space_pass():
    findings = audit.disk_findings(_log_dir([2**30, 2**30]), budget_bytes=4 * 2**30, min_free_ratio=0.1)
    assert [(f.check, f.ok, f.value) for f in findings] == [("disk_use", True, 2 * 2**30), ("disk_free", True, 0.5)]


def test_disk_over_budget_and_a_nearly_full_volume_are_named_with_numbers():
    findings = audit.disk_findings(_log_dir([3 * 2**30, 2 * 2**30], usable=5 * 2**30), budget_bytes=4 * 2**30,
                                   min_free_ratio=0.1)
    message = audit.violations_message(findings)
    assert message == ("2 retention audit violation(s):\n"
                       "- [disk_use] broker 1 /data/kafka: Kafka logs use 5.00 GiB of a 4.00 GiB budget\n"
                       "- [disk_free] broker 1 /data/kafka: 5.00 GiB of 100 GiB free (5.0%; minimum 10%)")


def test_an_offline_log_dir_is_a_violation_and_unknown_volume_sizes_are_skipped():
    [offline] = audit.disk_findings(_log_dir([1], error_code=57), budget_bytes=2**30, min_free_ratio=0.1)
    assert not offline.ok and "error code 57" in offline.message
    unknown = audit.disk_findings(_log_dir([1], total=-1, usable=-1), budget_bytes=2**30, min_free_ratio=0.1)
    assert [f.check for f in unknown] == ["disk_use"]


def test_worst_case_sums_partitions_times_retention_bytes_and_flags_unbounded_topics():
    bounded = {"retention.bytes": str(2**30), "segment.bytes": str(2**28)}
    ok = audit.worst_case_findings({"scans": TopicState(6, bounded), "dlq": TopicState(2, bounded)}, budget_bytes=16 * 2**30)
    assert [(f.ok, f.value) for f in ok] == [(True, 8 * (2**30 + 2**28))]
    over = audit.worst_case_findings({"scans": TopicState(6, bounded)}, budget_bytes=4 * 2**30)
    assert not over[-1].ok and "may grow to 7.50 GiB under their retention.bytes (budget 4.00 GiB)" in over[-1].message
    unbounded = audit.worst_case_findings({"scans": TopicState(6, {"retention.bytes": "-1"})}, budget_bytes=2**40)
    assert [f.ok for f in unbounded] == [False, True] and "retention.bytes is unbounded" in unbounded[0].message


def test_a_check_that_could_not_run_fails_the_report():
    assert audit.violations_message([], checks_not_run=1) == (
        "0 retention audit violation(s):\n- 1 check(s) could not run: see their task logs")
    findings = audit.retention_findings([SPEC], {})
    assert audit.from_dicts(audit.as_dicts(findings)) == findings


def _p(partition, leader, replicas, isr):
    return audit.PartitionHealth(partition, leader, tuple(replicas), tuple(isr))


def test_a_healthy_topic_gives_one_passing_line_per_check():
    findings = audit.partition_findings("scans", [_p(0, 1, [1, 2, 3], [1, 2, 3]), _p(1, 2, [2, 3, 1], [2, 3, 1])], 2)
    assert [(f.check, f.ok, f.partition) for f in findings] == [
        ("offline", True, -1), ("under_replicated", True, -1), ("min_isr", True, -1)]


def test_a_lost_broker_shows_as_under_replicated_and_a_second_as_below_min_isr_and_offline():
    one_down = audit.partition_findings("scans", [_p(0, 1, [1, 2, 3], [1, 2]), _p(1, 2, [2, 3, 1], [2, 3, 1])], 2)
    assert [(f.check, f.ok, f.partition) for f in one_down if not f.ok] == [("under_replicated", False, 0)]
    assert "scans[0]: 2 of 3 replicas in sync (in sync [1, 2], missing [3])" in audit.violations_message(one_down)
    two_down = audit.partition_findings("scans", [_p(0, -1, [3, 2, 1], [3])], 2)
    assert {f.check for f in two_down if not f.ok} == {"offline", "under_replicated", "min_isr"}
    assert any("below min.insync.replicas 2: acks=all writes are refused" in f.message for f in two_down)


def test_a_fenced_broker_is_a_violation():
    findings = audit.broker_findings([{"broker_id": 2, "host": "h", "port": 9094, "is_fenced": True},
                                      {"broker_id": 1, "host": "h", "port": 9092, "is_fenced": False}])
    assert [(f.ok, f.subject) for f in findings] == [(True, "broker 1 (h:9092)"), (False, "broker 2 (h:9094)")]


def _quorum(leader, voters):
    return {"topics": [{"topic_name": "__cluster_metadata", "partitions": [{
        "partition_index": 0, "leader_id": leader, "leader_epoch": 4, "high_watermark": 100, "error": None,
        "current_voters": [{"replica_id": i, "log_end_offset": end, "last_fetch_timestamp": t, "last_caught_up_timestamp": t}
                           for i, end, t in voters], "observers": []}]}]}


def test_a_quorum_with_a_leader_and_voters_caught_up_passes_and_a_lagging_voter_fails():
    ok = audit.quorum_findings(_quorum(2, [(1, 100, 99_800), (2, 100, 100_000), (3, 100, 99_700)]), max_lag_s=10)
    assert all(f.ok for f in ok) and [f.check for f in ok] == ["quorum_leader", "quorum_lag", "quorum_lag"]
    lagging = audit.quorum_findings(_quorum(2, [(1, 100, 99_800), (2, 160, 100_000), (3, 40, 70_000)]), max_lag_s=10)
    [bad] = [f for f in lagging if not f.ok]
    assert bad.message == "voter 3: 120 records behind the leader, last caught up 30.0 s ago (maximum 10 s)"
    never = audit.quorum_findings(_quorum(2, [(1, 0, -1), (2, 10, 100_000)]), max_lag_s=10)
    assert [f.message for f in never if not f.ok] == ["voter 1: 10 records behind the leader, never caught up (maximum 10 s)"]


def test_a_quorum_without_a_leader_or_an_answer_fails():
    [leaderless] = audit.quorum_findings(_quorum(-1, [(1, 100, 1), (2, 100, 1), (3, 100, 1)]), max_lag_s=10)
    assert not leaderless.ok and "has no leader" in leaderless.message
    [silent] = audit.quorum_findings(None, 10, "KafkaTimeoutError: timed out")
    assert not silent.ok and silent.message == "the controller quorum did not answer: KafkaTimeoutError: timed out"
