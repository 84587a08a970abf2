"""X-API-Key authentication, scopes and each key's rate (``api.ratelimit``)."""

from __future__ import annotations

import math
from functools import wraps
from pathlib import Path

from flask import Flask, current_app, g, request

from api.errors import error_response
from api.ratelimit import SharedWindowLimiter
from quacknet.apikeys import KeyStore


def init_app(app: Flask, keys: KeyStore, limiter_path: Path) -> None:
    app.extensions["quacknet.keys"] = keys
    app.extensions["quacknet.limiter"] = SharedWindowLimiter(limiter_path)


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
