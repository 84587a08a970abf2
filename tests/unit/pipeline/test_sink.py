"""The sink's memory of recently stored scans: what makes it look a scan up again, boundedly."""

from __future__ import annotations

import uuid

from quacknet.pipeline.sink import RecentScans


def test_recent_scans_are_recognised_and_the_oldest_forgotten_first():
    recent = RecentScans(capacity=3)
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    assert recent.seen([a, b]) == []
    recent.remember([a, b])
    recent.remember([b, c])  # b again: remembered once
    assert recent.seen([d, c, a]) == [c, a]
    recent.remember([d])  # a fourth: the oldest (a) goes
    assert recent.seen([a, b, c, d]) == [b, c, d]
    assert len(recent._order) == len(recent._seen) == 3
