"""X-API-Key authentication, scopes and a per-key rate limit (the `limits` library)."""

from __future__ import annotations

import math
import time
from functools import wraps

from flask import Flask, current_app, g, request
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from api.errors import error_response
from quacknet.apikeys import ApiKey, KeyStore


class RateLimiter:
    """Each key's rate (requests/s) is split evenly over the API's worker processes, which
    gunicorn feeds roughly evenly, so a node admits about the key's rate in total."""

    def __init__(self, workers: int):
        self._workers = max(1, workers)
        self._limiter = FixedWindowRateLimiter(MemoryStorage())
        self._items: dict[str, RateLimitItemPerSecond] = {}

    def _item(self, key: ApiKey) -> RateLimitItemPerSecond:
        item = self._items.get(key.name)
        if item is None:
            item = self._items[key.name] = RateLimitItemPerSecond(max(1, key.rate_per_s // self._workers))
        return item

    def hit(self, key: ApiKey) -> float | None:
        """None if admitted, else seconds until the window resets (for Retry-After)."""
        item = self._item(key)
        if self._limiter.hit(item, key.name):
            return None
        reset, _ = self._limiter.get_window_stats(item, key.name)
        return max(0.0, reset - time.time())


def init_app(app: Flask, keys: KeyStore, workers: int) -> None:
    app.extensions["quacknet.keys"] = keys
    app.extensions["quacknet.limiter"] = RateLimiter(workers)


def require(scope: str):
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            keys: KeyStore = current_app.extensions["quacknet.keys"]
            key = keys.lookup(request.headers.get("X-API-Key"))
            if key is None:
                return error_response(401, "unauthorized", "missing or unknown X-API-Key",
                                      headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'})
            if scope not in key.scopes:
                return error_response(403, "forbidden", f"this API key lacks the {scope!r} scope")
            wait = current_app.extensions["quacknet.limiter"].hit(key)
            if wait is not None:
                return error_response(429, "rate_limited", f"rate limit of {key.rate_per_s} requests/s exceeded",
                                      headers={"Retry-After": str(max(1, math.ceil(wait)))})
            g.api_key = key
            return view(*args, **kwargs)
        return wrapped
    return decorator
