"""GET /v1/coverage: H3 cells with their figures in a bounding box and time window, as GeoJSON.

The API reaches ClickHouse only here, through one client made on the first coverage request (so
ingest never waits for, or depends on, the warehouse) after checking the schema version once.
"""

from __future__ import annotations

import json
import threading

from flask import Blueprint, Flask, current_app, request

from api.auth import require
from quacknet import coverage, warehouse
from quacknet.apikeys import SCOPE_READ_COVERAGE
from quacknet.errors import Unavailable
from quacknet.logs import get_logger
from quacknet.warehouse.migrations import require_current

bp = Blueprint("coverage", __name__)
log = get_logger(__name__)


class Warehouse:
    """The API's ClickHouse client, made once, shared by the request threads (no HTTP session:
    clickhouse-connect then runs concurrent queries safely)."""

    def __init__(self, settings):
        self.settings = settings
        self._client = None
        self._lock = threading.Lock()

    def client(self):
        with self._lock:
            if self._client is None:
                made = warehouse.client(self.settings, autogenerate_session_id=False)
                try:
                    require_current(made, self.settings.clickhouse_database)
                except Exception:
                    made.close()
                    raise
                self._client = made
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def init_app(app: Flask, settings) -> Warehouse:
    app.extensions["quacknet.warehouse"] = store = Warehouse(settings)
    return store


@bp.get("/v1/coverage")
@require(SCOPE_READ_COVERAGE)
def get_coverage():
    settings = current_app.config["QUACKNET_SETTINGS"]
    query = coverage.build_query(request.args.get("bbox"), request.args.get("since"), request.args.get("until"),
                                 request.args.get("technology"))
    try:
        client = current_app.extensions["quacknet.warehouse"].client()
        found = coverage.cells(client, settings.clickhouse_database, query)
    except warehouse.ClickHouseDriverError as exc:
        raise _unavailable(warehouse.failure(exc, "reading coverage")) from exc
    except (warehouse.Refused, warehouse.SchemaBehind, Unavailable) as exc:
        raise _unavailable(exc) from exc
    body = json.dumps(coverage.feature_collection(found, query), separators=(",", ":"))
    return current_app.response_class(body, status=200, mimetype=coverage.MEDIA_TYPE)


def _unavailable(exc: Exception) -> Unavailable:
    """For a phone or an analyst, a warehouse that refuses or lags behind is not there yet: 503.
    The details (hosts, the server's words) go to the log, not to the caller; a schema that is
    behind says so, since an operator reading the answer can act on it."""
    log.error("api.coverage_unavailable", kind=type(exc).__name__, error=str(exc))
    if isinstance(exc, warehouse.SchemaBehind):
        return Unavailable(f"coverage is unavailable: {exc}")
    return Unavailable("coverage is unavailable: the warehouse did not answer; try again shortly")
