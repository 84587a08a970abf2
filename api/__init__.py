"""The Flask ingest API phones call: ``create_app(settings)`` builds it (Flask's application factory).

The factory only assembles: settings come in, each part attaches itself with ``init_app``.
Process-wide side effects (logging, the GC tuning) belong to the entry point (``api/wsgi.py``,
``api/gunicorn_conf.py``), so tests and tools can build as many apps as they like.
"""

from __future__ import annotations

import atexit

from flask import Flask

from api import auth, coverage, errors, health, metrics, openapi, producer, scans
from quacknet.apikeys import KeyStore
from quacknet.settings import Settings


def create_app(settings: Settings | None = None, *, keys: KeyStore | None = None) -> Flask:
    settings = settings or Settings()
    app = Flask(__name__)
    # An odd path is a 404 in the API's error shape, never a redirect to follow with an HTML body.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.config.from_mapping(QUACKNET_SETTINGS=settings, MAX_CONTENT_LENGTH=settings.api_max_body_bytes)
    registry = metrics.init_app(app)
    delivery = producer.init_app(app, settings, registry)
    auth.init_app(app, keys if keys is not None else KeyStore.load(settings.api_keys_path), settings.data_dir("api") / "ratelimit")
    store = coverage.init_app(app, settings)
    for bp in (scans.bp, coverage.bp, health.bp, openapi.bp):
        app.register_blueprint(bp)
    errors.init_app(app)

    def close() -> None:
        delivery.close()
        store.close()

    app.extensions["quacknet.close"] = close
    atexit.register(close)  # any server; gunicorn's worker_exit hook calls it first
    return app
