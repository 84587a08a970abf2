"""Never a silent drop: a broker outage spools scans and re-sends them; a graceful shutdown
flushes what is queued. These tests run their own broker or API so the shared stack is undisturbed."""

from __future__ import annotations

import json
import urllib.request

import pytest
from confluent_kafka.admin import NewTopic

from api import create_app
from devtools import kafka as devkafka
from devtools.samples import scan_payload
from devtools.services import API, KAFKA
from devtools.supervisor import Supervisor, free_port
from quacknet import kafka as qkafka
from quacknet.apikeys import SCOPE_WRITE_SCANS, add_key
from quacknet.scan import decode
from tests.support.api import key_store, post
from tests.support.kafka import read_topic
from tests.support.stack import own_ports
from tests.support.waiting import wait_for


@pytest.fixture
def own_kafka(stack, tmp_path):
    # one node on ports above the ephemeral range: the test stops and restarts it while clients dial it
    settings = own_ports(stack, tmp_path / "qn", kafka_nodes=1, clickhouse_url=stack.clickhouse_url)
    sup = Supervisor(settings)
    sup.start(KAFKA)
    admin = qkafka.admin(settings)
    admin.create_topics([NewTopic("outage.scans", 6, 1)])["outage.scans"].result(timeout=30)
    yield settings.model_copy(update={"scans_topic": "outage.scans"}), sup
    sup.stop(KAFKA, kill=True)


def test_a_broker_outage_spools_scans_and_delivers_every_one_when_it_is_back(own_kafka):
    settings, sup = own_kafka
    settings = settings.model_copy(update={"api_delivery_timeout_ms": 3000, "api_spool_resend_interval_s": 0.5, "api_workers": 1})
    app = create_app(settings, keys=key_store())
    client = app.test_client()
    delivery = app.extensions["quacknet.delivery"]
    sent = []
    try:
        before = [scan_payload(f"d{i % 7}") for i in range(100)]
        assert post(client, before, query="?wait=true").status_code == 202
        sent += before

        sup.stop(KAFKA)  # the broker goes away; phones keep submitting
        during = [scan_payload(f"d{i % 7}") for i in range(300)]
        for start in range(0, 300, 100):
            resp = post(client, during[start:start + 100])
            assert resp.status_code == 202, resp.json  # fire-and-forget: the phone is not kept waiting
        sent += during
        wait_for(lambda: delivery.spool.depth() == 300, 30, "the undeliverable scans to be spooled")
        assert client.get("/readyz").status_code == 503
        metrics = client.get("/metrics").get_data(as_text=True)
        assert "quacknet_delivery_spooled_total 300.0" in metrics

        sup.start(KAFKA)
        wait_for(lambda: delivery.spool.depth() == 0, 60, "the spool to drain")
        assert client.get("/readyz").status_code == 200
    finally:
        app.extensions["quacknet.close"]()
    ids = [str(decode(m.value()).scan_id) for m in read_topic(settings, settings.scans_topic)]
    assert sorted(ids) == sorted(s["scan_id"] for s in sent)  # every one, exactly once


def test_a_graceful_shutdown_of_the_gunicorn_api_loses_nothing_queued(stack, topic, tmp_path):
    settings = stack.model_copy(update={
        "home": tmp_path / "qn", "lib": stack.lib_dir, "scans_topic": topic, "api_port": free_port(),
        "api_linger_ms": 2000,  # scans sit in the producer queue when SIGTERM arrives
    })
    key = add_key(settings.api_keys_path, "t", {SCOPE_WRITE_SCANS}, 100_000)
    sup = Supervisor(settings)
    with devkafka.granted(settings, ("api",)):  # the API runs as its own principal: WRITE on this topic
        sup.start(API)
        _post_and_stop(settings, sup, key)
    assert "delivery.closed" in sup.log_file(API).read_text()


def _post_and_stop(settings, sup, key) -> None:
    sent = []
    try:
        for _ in range(10):
            batch = [scan_payload(f"g{i % 5}") for i in range(50)]
            req = urllib.request.Request(f"http://127.0.0.1:{settings.api_port}/v1/scans", data=json.dumps(batch).encode(),
                                         headers={"X-API-Key": key, "Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 202
            sent += batch
    finally:
        sup.stop(API)  # SIGTERM right away, well inside the 2 s linger
    ids = [str(decode(m.value()).scan_id) for m in read_topic(settings, settings.scans_topic)]
    assert sorted(ids) == sorted(s["scan_id"] for s in sent)
