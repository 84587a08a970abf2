"""GET /openapi.json, generated from the same pydantic models that validate and answer."""

from __future__ import annotations

from functools import cache

from flask import Blueprint, current_app, jsonify
from pydantic.json_schema import models_json_schema

from api.errors import ErrorBody
from api.health import Readiness
from api.scans import Outcome
from quacknet import coverage
from quacknet.scan import ScanIn, Technology

bp = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"


def _json(schema_ref: dict, description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema_ref}}}
    if headers:
        response["headers"] = headers
    return response


def _err(description: str, headers: dict | None = None) -> dict:
    return _json({"$ref": REF.format(model="ErrorBody")}, description, headers)


GEOJSON = {"type": "object", "required": ["type", "features"], "properties": {
    "type": {"const": "FeatureCollection"},
    "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
    "window": {"type": "object", "properties": {"since": {"type": "string"}, "until": {"type": "string"}}},
    "technology": {"type": ["string", "null"]},
    "features": {"type": "array", "items": {"type": "object", "required": ["type", "geometry", "properties"], "properties": {
        "type": {"const": "Feature"}, "id": {"type": "string"},
        "geometry": {"type": "object", "properties": {"type": {"const": "Polygon"}, "coordinates": {"type": "array"}}},
        "properties": {"type": "object", "properties": {
            "h3": {"type": "string"}, "resolution": {"type": "integer"}, "scans": {"type": "integer"},
            "technologies": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "scans": {"type": "integer"}, "median_rsrp_dbm": {"type": ["number", "null"]},
                "median_download_kbps": {"type": ["number", "null"]}}}}}}}}}}}
GEOJSON_EXAMPLE = {
    "type": "FeatureCollection", "bbox": [13.3, 52.48, 13.47, 52.56], "technology": None,
    "window": {"since": "2026-11-23T00:00:00Z", "until": "2026-11-30T00:00:00Z"},
    "features": [{"type": "Feature", "id": "881f1d4895fffff", "geometry": {"type": "Polygon", "coordinates": [[
        [13.40154, 52.524469], [13.394021, 52.523189], [13.391806, 52.518946], [13.39711, 52.515983],
        [13.40463, 52.517263], [13.406846, 52.521506], [13.40154, 52.524469]]]},
        "properties": {"h3": "881f1d4895fffff", "resolution": 8, "scans": 42, "technologies": {
            "LTE": {"scans": 40, "median_rsrp_dbm": -97.0, "median_download_kbps": 48000.0},
            "WIFI": {"scans": 2, "median_rsrp_dbm": None, "median_download_kbps": 120000.0}}}}],
}

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
            "/v1/coverage": {"get": {
                "summary": "Coverage: H3 cells (resolution 8) with scans in a bounding box and time window, as GeoJSON",
                "description": ("One Polygon feature per cell; per technology its scan count and the exact medians of "
                                "RSRP and download speed. A scan belongs to the box when its own position does. "
                                f"Bounded: at most {coverage.MAX_AREA_DEG2:g} square degrees, "
                                f"{coverage.MAX_WINDOW.days} days and {coverage.MAX_CELLS} cells."),
                "security": [{"apiKey": []}],
                "parameters": [
                    {"name": "bbox", "in": "query", "required": True, "schema": {"type": "string"},
                     "description": "minLon,minLat,maxLon,maxLat", "example": "13.30,52.48,13.47,52.56"},
                    {"name": "since", "in": "query", "required": True, "schema": {"type": "string", "format": "date-time"},
                     "description": "Inclusive, observed time, with a timezone", "example": "2026-11-23T00:00:00Z"},
                    {"name": "until", "in": "query", "required": False, "schema": {"type": "string", "format": "date-time"},
                     "description": "Exclusive; default: now"},
                    {"name": "technology", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": [t.value for t in Technology]}},
                ],
                "responses": {
                    "200": {"description": "A GeoJSON FeatureCollection (RFC 7946)", "content": {coverage.MEDIA_TYPE: {
                        "schema": GEOJSON, "example": GEOJSON_EXAMPLE}}},
                    "400": _err("A missing or malformed parameter, or a box, window or cell count over its bound"),
                    "401": _err("Missing or unknown API key"),
                    "403": _err("The API key lacks the coverage:read scope"),
                    "429": _err("Rate limit exceeded", RETRY_AFTER),
                    "503": _err("The warehouse is unavailable (or its schema is behind)", RETRY_AFTER),
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
