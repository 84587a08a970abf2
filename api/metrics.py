"""Prometheus metrics of the API; with gunicorn, every worker's values are summed
(prometheus_client multiprocess mode, PROMETHEUS_MULTIPROC_DIR set by the service)."""

from __future__ import annotations

import os
import time

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry):
        kw = {"registry": registry}
        self.registry = registry
        self.requests = Counter("quacknet_api_requests", "HTTP requests by endpoint and status",
                                ["method", "endpoint", "status"], **kw)
        self.latency = Histogram("quacknet_api_request_seconds", "Request latency", ["endpoint"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5), **kw)
        self.accepted = Counter("quacknet_api_scans_accepted", "Scans accepted (202) and queued for Kafka", **kw)
        self.rejected = Counter("quacknet_api_scans_rejected", "Scans rejected by validation", **kw)

    def observe(self, response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        method = request.method if request.method in METHODS else "other"  # callers choose methods: bound the labels
        self.requests.labels(method, endpoint, str(response.status_code)).inc()
        self.latency.labels(endpoint).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def init_app(app: Flask) -> CollectorRegistry:
    """Request counts and latency for every response; returns the registry the app's parts share."""
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    app.extensions["quacknet.metrics"] = metrics
    app.before_request(_start_timer)
    app.after_request(metrics.observe)
    return registry


def _start_timer():
    g.started = time.perf_counter()
