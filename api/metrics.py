"""Prometheus metrics of the API; with gunicorn, every worker's values are summed
(prometheus_client multiprocess mode, PROMETHEUS_MULTIPROC_DIR set by the service)."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess


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

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
