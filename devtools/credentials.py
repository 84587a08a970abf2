"""Development credentials of the local stack, in .quacknet/credentials.env (mode 600,
shell ``KEY=value`` lines, printed by ``make run``)."""

from __future__ import annotations

import os

from devtools.settings import DevSettings
from quacknet import apikeys


def read(settings: DevSettings) -> dict[str, str]:
    path = settings.credentials_file
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


def write(settings: DevSettings, values: dict[str, str]) -> None:
    path = settings.credentials_file
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = {**read(settings), **values}
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# QuackNet local development credentials (generated; not for production)\n"
                   + "".join(f"{k}={v}\n" for k, v in merged.items()))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


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
