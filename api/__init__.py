"""The Flask ingest API phones call: ``create_app(settings)`` builds it (Flask's application factory)."""

from __future__ import annotations

import atexit
import time

from flask import Flask, g, request
from prometheus_client import CollectorRegistry

from api import errors, health, openapi, scans
from api.auth import RateLimiter
from api.metrics import ApiMetrics
from quacknet.apikeys import KeyStore
from quacknet.delivery import Delivery
from quacknet.logs import configure_logging, get_logger
from quacknet.settings import Settings

log = get_logger(__name__)


def create_app(settings: Settings | None = None, *, keys: KeyStore | None = None) -> Flask:
    settings = settings or Settings()
    configure_logging(settings)
    app = Flask(__name__)
    app.config["QUACKNET_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.api_max_body_bytes
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    delivery = Delivery(settings, registry)
    app.extensions["quacknet.metrics"] = metrics
    app.extensions["quacknet.delivery"] = delivery
    app.extensions["quacknet.keys"] = keys if keys is not None else KeyStore.load(settings.api_keys_path)
    app.extensions["quacknet.limiter"] = RateLimiter(settings.api_workers)
    for bp in (scans.bp, health.bp, openapi.bp):
        app.register_blueprint(bp)
    errors.register(app)

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _count(response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(request.method, endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    def close() -> None:
        delivery.close()

    app.extensions["quacknet.close"] = close
    atexit.register(close)  # any server; gunicorn's worker_exit hook calls it first
    log.info("api.ready", topic=settings.scans_topic, keys=len(app.extensions["quacknet.keys"]))
    return app
