"""The ingest API's test keys and a request helper."""

from __future__ import annotations

import json

from quacknet.apikeys import SCOPE_WRITE_SCANS, ApiKey, KeyStore, digest, new_key

WRITER, READER, SLOW = new_key(), new_key(), new_key()


def key_store() -> KeyStore:
    return KeyStore([
        ApiKey("writer", digest(WRITER), frozenset({SCOPE_WRITE_SCANS}), 1_000_000),
        ApiKey("reader", digest(READER), frozenset({"metrics:read"}), 1_000),
        ApiKey("slow", digest(SLOW), frozenset({SCOPE_WRITE_SCANS}), 3),
    ])


def post(client, body, key=WRITER, content_type="application/json", query=""):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"X-API-Key": key} if key else {}
    return client.post(f"/v1/scans{query}", data=data, headers=headers, content_type=content_type)
