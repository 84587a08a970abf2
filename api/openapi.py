"""GET /openapi.json, generated from the same pydantic models that validate and answer."""

from __future__ import annotations

from functools import cache

from flask import Blueprint, current_app, jsonify
from pydantic.json_schema import models_json_schema

from api.errors import ErrorBody
from api.health import Readiness
from api.scans import Outcome
from quacknet.scan import ScanIn

bp = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"


def _json(schema_ref: dict, description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema_ref}}}
    if headers:
        response["headers"] = headers
    return response


def _err(description: str, headers: dict | None = None) -> dict:
    return _json({"$ref": REF.format(model="ErrorBody")}, description, headers)


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}


@cache
def build(max_batch: int) -> dict:
    _, defs = models_json_schema(
        [(ScanIn, "validation"), (Outcome, "serialization"), (ErrorBody, "serialization"), (Readiness, "serialization")],
        ref_template=REF,
    )
    scan = {"$ref": REF.format(model="ScanIn")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "QuackNet ingest API", "version": "1.0.0",
                 "description": "Phones submit network scans; accepted scans are queued for Kafka (202)."},
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
        "paths": {
            "/v1/scans": {"post": {
                "summary": "Submit one scan or a batch",
                "security": [{"apiKey": []}],
                "parameters": [{"name": "wait", "in": "query", "required": False, "schema": {"type": "boolean"},
                                "description": "Wait for Kafka's acknowledgement and return partition and offset"}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    scan, {"type": "array", "items": scan, "minItems": 1, "maxItems": max_batch}]}}}},
                "responses": {
                    "202": _json({"$ref": REF.format(model="Outcome")}, "Accepted: queued for Kafka; rejected items of a batch are listed"),
                    "400": _err("Malformed JSON, broken HTTP framing (e.g. chunk sizes), or a bad query parameter"),
                    "401": _err("Missing or unknown API key"),
                    "403": _err("The API key lacks the scans:write scope"),
                    "413": _err("Body (with Content-Length or chunked) or batch over the limit"),
                    "408": _err("The body did not arrive within the server's read timeout"),
                    "415": _err("Not application/json"),
                    "422": _err("Validation failed; each failing field is named by its JSONPath"),
                    "429": _err("Rate limit exceeded", RETRY_AFTER),
                    "503": _err("Producer queue saturated, or (wait=true) not acknowledged in time", RETRY_AFTER),
                },
            }},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {
                "description": "The process answers", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}}}}}}},
            "/readyz": {"get": {"summary": "Readiness: broker reachable, producer queue and spool not saturated", "responses": {
                "200": _json({"$ref": REF.format(model="Readiness")}, "Ready"),
                "503": _json({"$ref": REF.format(model="Readiness")}, "Not ready")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
                "description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
                "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
    }


@bp.get("/openapi.json")
def openapi():
    return jsonify(build(current_app.config["QUACKNET_SETTINGS"].api_max_batch))
