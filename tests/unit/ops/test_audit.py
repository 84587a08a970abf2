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
