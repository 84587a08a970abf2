"""The sink's memory of recently stored scans: what makes it look a scan up again, boundedly."""

from __future__ import annotations

import uuid

from quacknet.pipeline.sink import RecentScans


def test_recent_scans_are_recognised_and_the_oldest_forgotten_first():
    recent = RecentScans(capacity=4)  # two generations of two

    def seen(*ids):
        return recent.seen(list(ids), recent.keys(list(ids)))

    a, b, c, d = (uuid.uuid4() for _ in range(4))
    assert seen(a, b) == []
    recent.remember(recent.keys([a, a]))  # the same scan twice: remembered once
    assert seen(b, a) == [a] and len(recent) == 1
    recent.remember(recent.keys([b]))  # the generation is full: it becomes the older one
    recent.remember(recent.keys([c]))
    assert seen(a, b, c, d) == [a, b, c] and len(recent) == 3
    recent.remember(recent.keys([d]))  # the newer fills: the older (a, b) is forgotten, whole
    assert seen(a, b, c, d) == [c, d] and len(recent) == 2
