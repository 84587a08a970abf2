"""Process-wide tuning shared by the long-running services (the API's workers, the loader)."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Both services allocate a few objects per scan and keep whole batches alive while they work;
    with CPython's default thresholds (a young collection every 700 allocations) the collector
    walks those batches over and over. What exists at startup is frozen out of collections, and
    young collections run every 50,000 allocations; cycles are still collected, just less often.
    The effect is measured by bench/loader_throughput.py (bench/README.md)."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 1_000)
