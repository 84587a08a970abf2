"""POST /v1/scans: validate, answer 202 as soon as the scans are queued for Kafka."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from concurrent.futures import Future, wait

from flask import Blueprint, current_app, request
from pydantic import BaseModel, ValidationError

from api.auth import require
from api.body import read_body
from api.errors import ErrorDetail, details_of, error_response, json_path, printable
from quacknet.apikeys import SCOPE_WRITE_SCANS
from quacknet.delivery import Delivered, Delivery, QueueFull
from quacknet.scan import ScanFields, encode_received, kafka_key, validate_body, validate_submission

bp = Blueprint("scans", __name__)


class Rejected(BaseModel):
    index: int
    scan_id: str | None = None
    errors: list[ErrorDetail]


class DeliveredScan(BaseModel):
    scan_id: uuid.UUID
    partition: int
    offset: int


class Outcome(BaseModel):
    accepted: list[uuid.UUID]
    rejected: list[Rejected] = []
    delivered: list[DeliveredScan] | None = None  # only with ?wait=true


def _flag(value: str | None) -> bool | None:
    if value is None or value.lower() in ("false", "0", "no"):
        return False
    if value.lower() in ("true", "1", "yes", ""):
        return True
    return None


def _unicode_problems(value, path: str) -> list[ErrorDetail]:
    """Strings (keys and values) holding a lone surrogate: JSON's ``\\ud800`` escape parses in
    Python but is not text, and could never be written to Kafka as UTF-8. Iterative: a body may
    nest as deeply as the JSON parser allows."""
    problems, todo = [], [(value, path)]
    while todo:
        value, path = todo.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(ErrorDetail(path=path, type="string_unicode", message="not valid Unicode: a lone surrogate"))
        elif isinstance(value, dict):
            todo += [(k, path) for k in value] + [(v, json_path([k], path)) for k, v in value.items()]
        elif isinstance(value, list):
            todo += [(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return sorted(problems, key=lambda d: d.path)


def _invalid_utf8_paths(raw: bytes) -> list[ErrorDetail]:
    """Where the bytes that are not UTF-8 sit: decoded with each such byte kept as a lone surrogate,
    the body parses, and the strings holding one are named by their path."""
    try:
        body = json.loads(raw.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        return []  # not JSON either: the message says where the first bad byte is
    return [ErrorDetail(path=d.path, type="string_utf8", message="not valid UTF-8") for d in _unicode_problems(body, "$")]


def _validate_items(raw: bytes, now: dt.datetime, max_batch: int):
    """The slow path: find out which items are bad, and why, so the good ones can still be accepted."""
    try:
        body = json.loads(raw)
    except UnicodeDecodeError as exc:
        return error_response(400, "malformed_json", f"request body is not UTF-8: {exc.reason} at byte {exc.start}",
                              _invalid_utf8_paths(raw))
    except ValueError as exc:
        return error_response(400, "malformed_json", f"request body is not valid JSON: {exc}")
    except RecursionError:
        return error_response(400, "malformed_json", "request body nests too deeply")
    batch = isinstance(body, list)
    items = body if batch else [body]
    if batch and not items:
        return error_response(422, "validation_failed", "the batch is empty")
    if len(items) > max_batch:
        return error_response(413, "batch_too_large", f"a batch holds at most {max_batch} scans, got {len(items)}")
    accepted: list[ScanFields] = []
    rejected: list[Rejected] = []
    for i, item in enumerate(items):
        path = f"$[{i}]" if batch else "$"
        scan_id = item.get("scan_id") if isinstance(item, dict) and isinstance(item.get("scan_id"), str) else None
        scan_id = printable(scan_id) if scan_id is not None else None
        if problems := _unicode_problems(item, path):
            rejected.append(Rejected(index=i, scan_id=scan_id, errors=problems))
            continue
        try:
            accepted.append(validate_submission(item, now))
        except ValidationError as exc:
            rejected.append(Rejected(index=i, scan_id=scan_id, errors=details_of(exc, path)))
    return accepted, rejected


@bp.post("/v1/scans")
@require(SCOPE_WRITE_SCANS)
def submit():
    settings = current_app.config["QUACKNET_SETTINGS"]
    metrics = current_app.extensions["quacknet.metrics"]
    wait_for_ack = _flag(request.args.get("wait"))
    if wait_for_ack is None:
        return error_response(400, "bad_parameter", "wait must be true or false")
    if request.mimetype != "application/json":
        return error_response(415, "unsupported_media_type", "send the scan(s) as application/json")
    raw = read_body(request, settings.api_max_body_bytes)
    now = dt.datetime.now(dt.UTC)
    fast = validate_body(raw, now)
    if fast and len(fast) <= settings.api_max_batch:
        accepted, rejected = fast, []
    else:
        slow = _validate_items(raw, now, settings.api_max_batch)
        if not isinstance(slow, tuple):
            return slow  # an error response
        accepted, rejected = slow
    metrics.rejected.inc(len(rejected))
    if not accepted:
        details = [d for r in rejected for d in r.errors]
        return error_response(422, "validation_failed", f"{len(rejected)} scan(s) failed validation", details)

    delivery: Delivery = current_app.extensions["quacknet.delivery"]
    if not delivery.room(len(accepted)):
        raise QueueFull("the Kafka producer queue is saturated; retry shortly")
    # Everything that can fail is done before anything is produced: a request refused for its
    # content produced nothing, and one that produced something answers 202 with the outcome of
    # every item (or, with wait=true, 503 if Kafka did not acknowledge in time: then they are in
    # the spool and will be delivered, which the answer says).
    outcome = Outcome(accepted=[s.scan_id for s in accepted], rejected=rejected)
    answer = outcome.model_dump_json(exclude_none=True)
    messages = list(zip(map(kafka_key, accepted), encode_received(accepted, now), strict=True))
    waiters = [Future() for _ in accepted] if wait_for_ack else []
    delivery.submit(settings.scans_topic, messages, waiters)
    metrics.accepted.inc(len(accepted))

    if wait_for_ack:
        done, _ = wait(waiters, timeout=settings.api_wait_timeout_s)
        acks = [w.result() if w in done and w.exception() is None else None for w in waiters]
        if any(a is None for a in acks):
            missing = sum(a is None for a in acks)
            return error_response(503, "not_delivered", f"{missing} scan(s) were not acknowledged by Kafka in time; "
                                  "they are kept in the durable spool and will be delivered", headers={"Retry-After": "5"})
        outcome.delivered = [DeliveredScan(scan_id=s.scan_id, partition=a.partition, offset=a.offset)
                             for s, a in zip(accepted, acks, strict=True) if isinstance(a, Delivered)]
        answer = outcome.model_dump_json(exclude_none=True)
    return current_app.response_class(answer, status=202, mimetype="application/json")
