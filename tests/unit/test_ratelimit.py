"""The shared window: exact under threads and processes at once, and stable as keys are added."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

from api.ratelimit import SharedWindowLimiter
from quacknet.apikeys import ApiKey

KEY = ApiKey("k", "x" * 64, frozenset(), 500)


def _hammer(path, now, out, threads=10, hits=50):
    limiter = SharedWindowLimiter(path)
    admitted = [0]
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def many():
        start.wait()
        mine = sum(1 for _ in range(hits) if limiter.hit(KEY, now) is None)
        with lock:
            admitted[0] += mine

    threads = [threading.Thread(target=many) for _ in range(threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(admitted[0])


def test_threads_of_several_processes_admit_exactly_the_rate(tmp_path):
    now = float(int(time.time()) + 5)  # one window for everyone
    out = mp.get_context("fork").Queue()
    procs = [mp.get_context("fork").Process(target=_hammer, args=(tmp_path / "rl", now, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sum(out.get(timeout=5) for _ in procs) == KEY.rate_per_s  # 2,000 attempts at once, 500 admitted


def test_a_new_window_starts_afresh_and_a_refusal_says_when(tmp_path):
    limiter = SharedWindowLimiter(tmp_path / "rl")
    one = ApiKey("one", "y" * 64, frozenset(), 1)
    assert limiter.hit(one, 100.0) is None
    assert limiter.hit(one, 100.75) == 0.25
    assert limiter.hit(one, 101.0) is None


def test_keys_keep_their_records_whatever_keys_a_worker_knows(tmp_path):
    early, late = SharedWindowLimiter(tmp_path / "rl"), SharedWindowLimiter(tmp_path / "rl")
    a, b = ApiKey("a", "1" * 64, frozenset(), 2), ApiKey("b", "2" * 64, frozenset(), 2)
    assert early.hit(a, 10.0) is None and late.hit(a, 10.1) is None
    assert early.hit(a, 10.2) is not None  # a's two, counted across both
    assert late.hit(b, 10.3) is None and early.hit(b, 10.4) is None and late.hit(b, 10.5) is not None


def test_threads_of_one_process_exclude_each_other_even_when_reads_are_slow(tmp_path, monkeypatch):
    """``lockf`` does not exclude a process's own threads: a slow read between check and update
    (widened here on purpose) must still not let two threads take the same last request."""
    import api.ratelimit as rl

    real_pread = rl.os.pread

    def slow_pread(fd, n, offset):
        data = real_pread(fd, n, offset)
        time.sleep(0.001)
        return data

    monkeypatch.setattr(rl.os, "pread", slow_pread)
    limiter = SharedWindowLimiter(tmp_path / "rl")
    key = ApiKey("slow", "z" * 64, frozenset(), 5)
    now = float(int(time.time()) + 5)
    admitted, lock, start = [], threading.Lock(), threading.Barrier(16)

    def one():
        start.wait()
        if limiter.hit(key, now) is None:
            with lock:
                admitted.append(1)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 5
