"""The ceiling the ingest API is measured against in bench/api_ingest.py: the same gunicorn,
Flask and producer settings, but no validation and no encoding. Each item of a batch goes to
Kafka as the client sent it, keyed by its device_id; no delivery reports. Whatever this app
cannot reach on a machine, no validating API in this stack reaches there.

    gunicorn --workers 2 --worker-class api.workers.ApiWorker --threads 8 'bench.passthrough_app:create_app()'
"""

from __future__ import annotations

import msgspec
from flask import Flask, request

from quacknet import delivery
from quacknet.settings import Settings


class _Key(msgspec.Struct):
    device_id: str


_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_KEYS = msgspec.json.Decoder(list[_Key])


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    app = Flask(__name__)
    producer = delivery.producer(settings)

    @app.post("/v1/scans")
    def ingest():
        raw = request.get_data(cache=False)
        items, keys = _ITEMS.decode(raw), _KEYS.decode(raw)
        batch = [{"key": k.device_id.encode(), "value": bytes(v)} for k, v in zip(keys, items)]
        producer.produce_batch(settings.scans_topic, batch)
        producer.poll(0)
        if any("_error" in m for m in batch):  # queue full: shed like the API (such a batch is not counted)
            return app.response_class(b'{"error":"queue_full"}', status=503, mimetype="application/json")
        return app.response_class(b'{"accepted":%d}' % len(items), status=202, mimetype="application/json")

    return app

