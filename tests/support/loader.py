"""Loaders for tests: in a thread (to inspect), or as a real process (to kill)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from quacknet.loader import Loader


def count(ch, settings) -> int:
    return ch.command(f"SELECT count() FROM {settings.clickhouse_database}.scans")


def stored_ids(ch, settings) -> list[str]:
    return [str(r[0]) for r in ch.query(f"SELECT scan_id FROM {settings.clickhouse_database}.scans").result_rows]


class LoaderThread:
    def __init__(self, settings, group: str | None = None):
        self.loader = Loader(settings, group=group)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.loader.run()
        except BaseException as exc:  # kept for the test to assert on
            self.error = exc

    def stop(self):
        self.loader.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


def loader_process(settings, **popen) -> subprocess.Popen:
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "quacknet.loader"], env={**os.environ, **settings.to_env()}, **popen)
