"""One JSON error shape for every 4xx/5xx the API returns."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, jsonify
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from quacknet.errors import Conflict, InvalidInput, Unavailable
from quacknet.logs import get_logger

log = get_logger(__name__)


class ErrorDetail(BaseModel):
    path: str  # JSONPath of the failing field: "$.lat", "$[3].rsrp", "$" for the whole item
    type: str
    message: str


class ErrorBody(BaseModel):
    error: str
    message: str
    details: list[ErrorDetail] = []


def printable(text: str) -> str:
    """Text that can be written as UTF-8 JSON: a lone surrogate from a client's ``\\ud800``
    escape is shown escaped instead of failing the response."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_path(loc: Iterable[str | int], prefix: str = "$") -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{printable(str(part))}"
    return path


def details_of(exc: ValidationError, prefix: str = "$") -> list[ErrorDetail]:
    return [ErrorDetail(path=json_path(e["loc"], prefix), type=e["type"], message=printable(e["msg"]))
            for e in exc.errors()]


def error_response(status: int, error: str, message: str, details: list[ErrorDetail] | None = None,
                   headers: dict[str, str] | None = None):
    body = ErrorBody(error=error, message=printable(message), details=details or [])
    response = jsonify(body.model_dump())
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def init_app(app: Flask) -> None:
    """Every error answers in the one shape; QuackNet's own kinds map to their status."""

    @app.errorhandler(InvalidInput)
    def invalid(exc: InvalidInput):
        return error_response(400, exc.code, str(exc))

    @app.errorhandler(Conflict)
    def conflict(exc: Conflict):
        return error_response(409, exc.code, str(exc))

    @app.errorhandler(Unavailable)
    def unavailable(exc: Unavailable):
        return error_response(503, exc.code, str(exc), headers={"Retry-After": "1"})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        name = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, name, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("api.unhandled")
        return error_response(500, "internal_error", "unexpected server error; it has been logged")
