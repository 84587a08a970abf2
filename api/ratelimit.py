"""Per-key request rates, exact across the API's worker processes on one node.

Each key gets one fixed one-second window: a 16-byte record (window start, requests in it) in a
small file beside the spool, updated under a byte-range lock (``fcntl.lockf``) by whichever worker
serves the request. Splitting a key's rate over the workers, as a per-process limiter must,
admits the wrong number whenever the rate does not divide evenly or gunicorn's workers are fed
unevenly (1/s over two workers admitted 2/s; 3/s admitted 2/s). The ``limits`` library shares
counters across processes only through a server (Redis, Memcached, MongoDB); this needs none.
Across several API nodes each node enforces the rate on its own (documented in the README).
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
from pathlib import Path

from quacknet.apikeys import ApiKey

RECORD = struct.Struct("<qq")  # window start (whole seconds), requests admitted in it


class SharedWindowLimiter:
    def __init__(self, path: Path, key_names: list[str]):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._slots = {name: i for i, name in enumerate(sorted(key_names))}
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = RECORD.size * max(1, len(self._slots))
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)

    def hit(self, key: ApiKey, now: float | None = None) -> float | None:
        """None if admitted, else seconds until the key's window resets (for Retry-After)."""
        now = time.time() if now is None else now
        window = int(now)
        offset = RECORD.size * self._slots[key.name]
        fcntl.lockf(self._fd, fcntl.LOCK_EX, RECORD.size, offset)
        try:
            start, count = RECORD.unpack(os.pread(self._fd, RECORD.size, offset))
            if start != window:
                start, count = window, 0
            if count >= key.rate_per_s:
                return window + 1 - now
            os.pwrite(self._fd, RECORD.pack(start, count + 1), offset)
            return None
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, RECORD.size, offset)

    def close(self) -> None:
        os.close(self._fd)
