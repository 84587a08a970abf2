"""Liveness, readiness and metrics."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from pydantic import BaseModel

from quacknet.delivery import Delivery

bp = Blueprint("health", __name__)


class Readiness(BaseModel):
    ready: bool
    broker_reachable: bool
    queue_depth: int
    queue_max: int
    spool_depth: int


@bp.get("/healthz")
def healthz():
    """The process answers; nothing else is checked (a broker outage must not restart us)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    delivery: Delivery = current_app.extensions["quacknet.delivery"]
    broker = delivery.broker_reachable()
    state = Readiness(ready=False, broker_reachable=broker, queue_depth=len(delivery.producer),
                      queue_max=delivery.queue_max, spool_depth=delivery.spool.depth())
    state.ready = broker and delivery.room(0) and state.spool_depth < delivery.spool.max_messages
    response = jsonify(state.model_dump())
    response.status_code = 200 if state.ready else 503
    return response


@bp.get("/metrics")
def metrics():
    current_app.extensions["quacknet.delivery"].sync_metrics()
    body = current_app.extensions["quacknet.metrics"].exposition()
    return current_app.response_class(body, mimetype="text/plain; version=0.0.4; charset=utf-8")
