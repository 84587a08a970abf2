"""The ingest API against the real broker: what arrives on the topic, what never does."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import textwrap
import uuid

import pytest

from api import create_app
from devtools.samples import scan_payload
from quacknet.scan import decode
from tests.support.api import READER, SLOW, WRITER, key_store, post
from tests.support.kafka import read_topic
from tests.support.partitioning import partition_for_key


@pytest.fixture
def api_settings(stack, topic, tmp_path):
    return stack.model_copy(update={"home": tmp_path / "qn", "lib": stack.lib_dir, "scans_topic": topic, "api_workers": 1})


@pytest.fixture
def client(api_settings):
    app = create_app(api_settings, keys=key_store())
    yield app.test_client()
    app.extensions["quacknet.close"]()


def test_accepted_scans_arrive_on_the_topic_as_documented(client, api_settings, topic):
    rng = random.Random(7)
    devices = [f"phone-{i}" for i in range(10)]
    sent = [scan_payload(devices[i % 10], rng=rng) for i in range(200)]
    before = dt.datetime.now(dt.UTC)
    for start in range(0, 200, 50):
        resp = post(client, sent[start:start + 50])
        assert resp.status_code == 202, resp.json
        assert resp.json["accepted"] == [s["scan_id"] for s in sent[start:start + 50]] and resp.json["rejected"] == []
    resp = post(client, sent[0] | {"scan_id": str(uuid.uuid4())}, query="?wait=true")  # flushes the ones before it
    assert resp.status_code == 202 and len(resp.json["delivered"]) == 1

    messages = read_topic(api_settings, topic)
    assert len(messages) == 201
    by_id = {s["scan_id"]: s for s in sent}
    seen_order: dict[str, list[str]] = {}
    for msg in messages:
        scan = decode(msg.value())
        doc = json.loads(msg.value())
        assert msg.key() == scan.device_id.encode()
        assert msg.partition() == partition_for_key(msg.key(), 6)
        assert before - dt.timedelta(seconds=1) <= scan.received_at <= dt.datetime.now(dt.UTC)
        assert doc["received_at"].endswith("Z") and doc["schema_version"] == 1
        if str(scan.scan_id) in by_id:
            original = by_id[str(scan.scan_id)]
            assert {k: doc[k] for k in ("device_id", "lat", "lon", "technology", "mcc", "mnc", "rsrp")} == \
                   {k: original[k] for k in ("device_id", "lat", "lon", "technology", "mcc", "mnc", "rsrp")}
            seen_order.setdefault(scan.device_id, []).append(str(scan.scan_id))
    assert len(seen_order) == 10
    for device, ids in seen_order.items():  # one phone's scans stay in submission order
        assert ids == [s["scan_id"] for s in sent if s["device_id"] == device]


def test_wait_true_returns_where_kafka_stored_each_scan(client, api_settings, topic):
    body = [scan_payload("phone-a"), scan_payload("phone-b")]
    resp = post(client, body, query="?wait=true")
    assert resp.status_code == 202
    delivered = {d["scan_id"]: (d["partition"], d["offset"]) for d in resp.json["delivered"]}
    on_topic = {str(decode(m.value()).scan_id): (m.partition(), m.offset()) for m in read_topic(api_settings, topic)}
    assert delivered == on_topic


BAD_REQUESTS = [
    pytest.param(b'{"scan_id": ', {}, 400, "malformed_json", id="malformed-json"),
    pytest.param(b"\xff\xfe\x00garbage", {}, 400, "malformed_json", id="not-utf8"),
    pytest.param(b"[" * 100_000, {}, 400, "malformed_json", id="nested-too-deep"),
    pytest.param(scan_payload(lat="north"), {}, 422, "validation_failed", id="wrong-type"),
    pytest.param(scan_payload(lat=91), {}, 422, "validation_failed", id="out-of-range"),
    pytest.param(b'{"lat": NaN}', {}, 422, "validation_failed", id="nan"),
    pytest.param({k: v for k, v in scan_payload().items() if k != "device_id"}, {}, 422, "validation_failed", id="missing-field"),
    pytest.param(scan_payload(extra_field=1), {}, 422, "validation_failed", id="unknown-field"),
    pytest.param([], {}, 422, "validation_failed", id="empty-batch"),
    pytest.param("5", {}, 422, "validation_failed", id="not-an-object"),
    pytest.param([scan_payload()] * 1001, {}, 413, "batch_too_large", id="batch-over-limit"),
    pytest.param(b"x" * (5 * 1024 * 1024), {}, 413, "request_entity_too_large", id="body-over-limit"),
    pytest.param(scan_payload(), {"content_type": "text/plain"}, 415, "unsupported_media_type", id="content-type"),
    pytest.param(scan_payload(), {"key": None}, 401, "unauthorized", id="no-key"),
    pytest.param(scan_payload(), {"key": "qn_not-a-key"}, 401, "unauthorized", id="unknown-key"),
    pytest.param(scan_payload(), {"key": READER}, 403, "forbidden", id="key-without-scope"),
    pytest.param(scan_payload(), {"query": "?wait=perhaps"}, 400, "bad_parameter", id="bad-wait"),
]


@pytest.mark.parametrize("body,kwargs,status,error", BAD_REQUESTS)
def test_bad_input_gets_a_clear_error_and_nothing_reaches_kafka(client, api_settings, topic, body, kwargs, status, error):
    resp = post(client, body, **kwargs)
    assert resp.status_code == status
    assert resp.json["error"] == error and resp.json["message"]
    if status == 422 and error == "validation_failed" and body not in ([], "5"):
        assert resp.json["details"] and all(d["path"].startswith("$") for d in resp.json["details"])
    sentinel = scan_payload("sentinel")
    assert post(client, sentinel, query="?wait=true").status_code == 202
    assert [decode(m.value()).scan_id for m in read_topic(api_settings, topic)] == [uuid.UUID(sentinel["scan_id"])]


def test_validation_errors_name_each_failing_field(client):
    resp = post(client, scan_payload(lat=200, rsrp=-10, technology="GSM"))
    paths = {d["path"] for d in resp.json["details"]}
    assert resp.status_code == 422 and {"$.lat", "$.rsrp"} <= paths


def test_a_partly_bad_batch_accepts_the_good_items(client, api_settings, topic):
    good = [scan_payload(f"p{i}") for i in range(3)]
    batch = [good[0], scan_payload(lat=-100), good[1], {"nonsense": True}, good[2]]
    resp = post(client, batch, query="?wait=true")
    assert resp.status_code == 202
    assert resp.json["accepted"] == [g["scan_id"] for g in good]
    assert [r["index"] for r in resp.json["rejected"]] == [1, 3]
    assert resp.json["rejected"][0]["scan_id"] == batch[1]["scan_id"]
    assert any(e["path"] == "$[1].lat" for e in resp.json["rejected"][0]["errors"])
    assert sorted(str(decode(m.value()).scan_id) for m in read_topic(api_settings, topic)) == sorted(g["scan_id"] for g in good)


def test_rate_limit_answers_429_with_retry_after(client):
    statuses = []
    for _ in range(50):  # the key allows 3 requests/s; a window boundary may let a few more through
        resp = post(client, scan_payload(), key=SLOW)
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            break
    assert statuses[0] == 202 and statuses[-1] == 429 and statuses.count(202) <= 6
    assert resp.json["error"] == "rate_limited" and int(resp.headers["Retry-After"]) >= 1
    assert post(client, scan_payload(), key=WRITER).status_code == 202  # other keys are unaffected


def test_health_readiness_metrics_and_openapi(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["broker_reachable"] is True
    post(client, [scan_payload(), scan_payload(lat=500)], query="?wait=true")
    text = client.get("/metrics").get_data(as_text=True)
    assert "quacknet_api_scans_accepted_total 1.0" in text and "quacknet_api_scans_rejected_total 1.0" in text
    assert "quacknet_delivery_delivered_total 1.0" in text and "quacknet_delivery_spool_depth" in text
    assert 'quacknet_api_requests_total{endpoint="/v1/scans",method="POST",status="202"} 1.0' in text


def test_openapi_document_is_valid_and_generated_from_the_schema(client):
    from openapi_spec_validator import validate

    spec = client.get("/openapi.json").json
    validate(spec)
    scan = spec["components"]["schemas"]["ScanIn"]
    assert scan["properties"]["lat"]["maximum"] == 90 and scan["additionalProperties"] is False
    assert set(spec["paths"]) == {"/v1/scans", "/v1/coverage", "/healthz", "/readyz", "/metrics", "/openapi.json"}


def test_unknown_routes_and_methods_use_the_error_shape(client):
    assert client.get("/nope").json["error"] == "not_found"
    resp = client.get("/v1/scans")
    assert resp.status_code == 405 and resp.json["error"] == "method_not_allowed"


def test_an_unexpected_error_is_a_500_in_the_documented_shape_logged_with_its_traceback(api_settings, tmp_path):
    """In a process of its own, so that its logging set-up is the service's (JSON lines on stderr)."""
    script = textwrap.dedent("""
        import json, sys
        from api import create_app
        from devtools.samples import scan_payload
        from quacknet.logs import configure_logging
        from quacknet.settings import Settings
        from tests.support.api import key_store, post

        settings = Settings()
        configure_logging(settings)
        app = create_app(settings, keys=key_store())
        def broken(*args, **kwargs):
            raise RuntimeError("the producer blew up")
        app.extensions["quacknet.delivery"].submit = broken
        resp = post(app.test_client(), scan_payload())
        print(json.dumps({"status": resp.status_code, "body": resp.json}))
        app.extensions["quacknet.close"]()
    """)
    env = {**os.environ, **api_settings.to_env(), "QUACKNET_LOG_JSON": "true"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"status": 500, "body": {"error": "internal_error", "details": [],
                                              "message": "unexpected server error; it has been logged"}}
    [line] = [json.loads(raw) for raw in done.stderr.splitlines() if '"api.unhandled"' in raw]
    [exc] = line["exception"]
    assert (exc["exc_type"], exc["exc_value"]) == ("RuntimeError", "the producer blew up")
    assert any(f["name"] == "broken" for f in exc["frames"]) and all("locals" not in f for f in exc["frames"])
