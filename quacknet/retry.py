"""The one backoff rule: capped exponential delays, for every loop that waits on a dependency.

``Backoff`` is an object rather than a decorator because the callers differ in what they do
between attempts (the loader counts and logs a failure, reconnects, and may be told to give up
by a rebalance); they share how long to wait and when to stop.
"""

from __future__ import annotations

import threading
import time


class Backoff:
    """Delays ``initial_s``, doubling up to ``max_s``; ``deadline_s`` (seconds from now) bounds the
    whole wait. ``sleep`` returns False instead of sleeping once the deadline would pass, or at
    once when ``interrupt`` is set (so a stop request is never held up by a sleep)."""

    def __init__(self, initial_s: float = 0.2, max_s: float = 10.0, deadline_s: float | None = None,
                 interrupt: threading.Event | None = None):
        self.delay = initial_s
        self.max_s = max_s
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self.interrupt = interrupt
        self.attempts = 0

    def sleep(self) -> bool:
        self.attempts += 1
        delay = self.delay
        self.delay = min(self.delay * 2, self.max_s)
        if self.deadline is not None and time.monotonic() + delay > self.deadline:
            return False
        if self.interrupt is not None:
            return not self.interrupt.wait(delay)
        time.sleep(delay)
        return True
