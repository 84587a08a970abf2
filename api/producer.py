"""The process's one Kafka producer (``quacknet.delivery``), attached to the app and closed with it."""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry

from quacknet.delivery import Delivery
from quacknet.logs import get_logger
from quacknet.settings import Settings

log = get_logger(__name__)


def init_app(app: Flask, settings: Settings, registry: CollectorRegistry) -> Delivery:
    delivery = Delivery(settings, registry)
    app.extensions["quacknet.delivery"] = delivery
    log.info("api.producer_ready", topic=settings.scans_topic)
    return delivery
