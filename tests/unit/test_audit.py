from quacknet import audit
from quacknet.topics import TopicSpec, TopicState

SPEC = TopicSpec("scans", 6, {"retention.ms": "604800000", "retention.bytes": "536870912", "cleanup.policy": "delete"})


def test_retention_as_declared_is_ok_and_a_wrong_one_is_named():
    ok = audit.retention_findings([SPEC], {"scans": TopicState(6, {"retention.ms": "604800000", "retention.bytes": "536870912"})})
    assert [f.ok for f in ok] == [True, True] and audit.violations_message(ok) is None
    bad = audit.retention_findings([SPEC], {"scans": TopicState(6, {"retention.ms": "-1", "retention.bytes": "536870912"})})
    message = audit.violations_message(bad)
    assert message.startswith("1 retention audit violation") and "scans: retention.ms is -1, policy says 604800000" in message


def test_a_missing_topic_is_a_violation():
    findings = audit.retention_findings([SPEC], {})
    assert findings and not any(f.ok for f in findings)
