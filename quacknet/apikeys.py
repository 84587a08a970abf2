"""API keys: only their SHA-256 is stored, with a name, scopes and a rate limit.

Keys are 32 random bytes (``qn_`` + URL-safe base64), so a fast hash is safe to
store and cheap to check on every request; a slow password hash would cost more
than the request itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCOPE_WRITE_SCANS = "scans:write"
SCOPE_READ_COVERAGE = "coverage:read"
DEFAULT_RATE_PER_S = 5000


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    scopes: frozenset[str] = field(default_factory=lambda: frozenset({SCOPE_WRITE_SCANS}))
    rate_per_s: int = DEFAULT_RATE_PER_S


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "qn_" + secrets.token_urlsafe(32)


class KeyStore:
    def __init__(self, keys: list[ApiKey]):
        self._by_hash = {k.sha256: k for k in keys}

    def lookup(self, key: str | None) -> ApiKey | None:
        return self._by_hash.get(digest(key)) if key else None

    def __len__(self) -> int:
        return len(self._by_hash)

    def names(self) -> list[str]:
        return sorted(k.name for k in self._by_hash.values())

    @classmethod
    def load(cls, path: Path) -> "KeyStore":
        if not path.exists():
            return cls([])
        entries = json.loads(path.read_text()).get("keys", [])
        return cls([ApiKey(e["name"], e["sha256"], frozenset(e.get("scopes", [SCOPE_WRITE_SCANS])),
                           int(e.get("rate_per_s", DEFAULT_RATE_PER_S))) for e in entries])


def add_key(path: Path, name: str, scopes: set[str], rate_per_s: int) -> str:
    """Create a key, store its hash in ``path`` (mode 600) and return the plaintext once."""
    plaintext = new_key()
    _store(path, ApiKey(name, digest(plaintext), frozenset(scopes), rate_per_s))
    return plaintext


def grant(path: Path, key: ApiKey, scopes: set[str]) -> ApiKey:
    """The same key (same plaintext) with more scopes."""
    granted = ApiKey(key.name, key.sha256, key.scopes | frozenset(scopes), key.rate_per_s)
    _store(path, granted)
    return granted


def _store(path: Path, key: ApiKey) -> None:
    data = json.loads(path.read_text()) if path.exists() else {"keys": []}
    data["keys"] = [e for e in data["keys"] if e["name"] != key.name]
    entry = asdict(key)
    entry["scopes"] = sorted(entry["scopes"])
    data["keys"].append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
