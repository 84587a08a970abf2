"""Development credentials of the local stack, in .quacknet/credentials.env (mode 600,
shell ``KEY=value`` lines, printed by ``make run``).

The local ClickHouse login (``CLICKHOUSE_USER`` / ``CLICKHOUSE_PASSWORD``) is generated here the
first time any ``DevSettings`` is built for a state dir, before anything starts, so the gateway,
the loader, the API, Airflow's connection, the tests and the benchmarks all read the same one.
Writers take an exclusive lock: two processes starting on a fresh clone must not each generate a
password and overwrite the other's.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from quacknet import apikeys

if TYPE_CHECKING:
    from devtools.settings import DevSettings

CLICKHOUSE_USER = "quacknet"
HEADER = "# QuackNet local development credentials (generated; not for production)\n"


def read_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write_locked(path: Path, values: dict[str, str]) -> None:
    merged = {**read_file(path), **values}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(HEADER + "".join(f"{k}={v}\n" for k, v in merged.items()))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def clickhouse_login(path: Path) -> tuple[str, str]:
    """The local ClickHouse user and password: read from ``path``, or generated once and written."""
    current = read_file(path)
    if current.get("CLICKHOUSE_PASSWORD"):
        return current.get("CLICKHOUSE_USER") or CLICKHOUSE_USER, current["CLICKHOUSE_PASSWORD"]
    with _locked(path):
        current = read_file(path)  # another process may have generated it while we waited
        if not current.get("CLICKHOUSE_PASSWORD"):
            current = {"CLICKHOUSE_USER": CLICKHOUSE_USER, "CLICKHOUSE_PASSWORD": secrets.token_urlsafe(24)}
            _write_locked(path, current)
    return current.get("CLICKHOUSE_USER") or CLICKHOUSE_USER, current["CLICKHOUSE_PASSWORD"]


def read(settings: DevSettings) -> dict[str, str]:
    return read_file(settings.credentials_file)


def write(settings: DevSettings, values: dict[str, str]) -> None:
    with _locked(settings.credentials_file):
        _write_locked(settings.credentials_file, values)


DEV_SCOPES = {apikeys.SCOPE_WRITE_SCANS, apikeys.SCOPE_READ_COVERAGE}


def ensure_api_key(settings: DevSettings) -> str:
    """The development API key (write scans, read coverage): reused while its hash is in the key
    file, given any scope it lacks, else created."""
    current = read(settings).get("QUACKNET_API_KEY")
    known = apikeys.KeyStore.load(settings.api_keys_path).lookup(current) if current else None
    if known is not None:
        if not DEV_SCOPES <= known.scopes:
            apikeys.grant(settings.api_keys_path, known, DEV_SCOPES)
        return current
    key = apikeys.add_key(settings.api_keys_path, "dev", DEV_SCOPES, rate_per_s=20_000)
    write(settings, {"QUACKNET_API_KEY": key})
    return key
