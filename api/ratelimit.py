"""Per-key request rates, exact across the API's worker processes and threads on one node.

Each key gets one fixed one-second window: a record (the key's name hash, window start, requests
in it) in a small file beside the spool, updated under the file's lock (``fcntl.lockf``, which
excludes other processes) and a thread lock (``lockf`` locks belong to a process, so they do not
exclude its own threads). Splitting a key's rate over the workers, as a per-process limiter must,
admits the wrong number whenever the rate does not divide evenly or gunicorn's workers are fed
unevenly (1/s over two workers admitted 2/s; 3/s admitted 2/s). The ``limits`` library shares
counters across processes only through a server (Redis, Memcached, MongoDB); this needs none.

Records are found by a hash of the key's name (open addressing), so workers started before and
after a key was added agree on its record. A fixed window admits up to twice the rate across a
window's boundary (the last instant of one second and the first of the next). Across several API
nodes each node enforces the rate on its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import threading
import time
from pathlib import Path

from quacknet.apikeys import ApiKey
from quacknet.errors import Saturated

RECORD = struct.Struct("<Qqq")  # name hash (0: free), window start (whole seconds), requests admitted in it
SLOTS = 4096


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") or 1


class SharedWindowLimiter:
    def __init__(self, path: Path, key_names: list[str] | None = None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < RECORD.size * SLOTS:
            os.ftruncate(self._fd, RECORD.size * SLOTS)
        self._threads = threading.Lock()

    def hit(self, key: ApiKey, now: float | None = None) -> float | None:
        """None if admitted, else seconds until the key's window resets (for Retry-After)."""
        now = time.time() if now is None else now
        window, wanted = int(now), _name_hash(key.name)
        with self._threads:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                offset = self._find(wanted)
                _, start, count = RECORD.unpack(os.pread(self._fd, RECORD.size, offset))
                if start != window:
                    start, count = window, 0
                if count >= key.rate_per_s:
                    return window + 1 - now
                os.pwrite(self._fd, RECORD.pack(wanted, start, count + 1), offset)
                return None
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def _find(self, wanted: int) -> int:
        """The record of the key, or the first free one on its probe path (under the locks)."""
        first = wanted % SLOTS
        for i in range(SLOTS):
            offset = RECORD.size * ((first + i) % SLOTS)
            name, _, _ = RECORD.unpack(os.pread(self._fd, RECORD.size, offset))
            if name in (wanted, 0):
                return offset
        raise Saturated(f"the rate table holds {SLOTS} keys; no room for another")

    def close(self) -> None:
        os.close(self._fd)
