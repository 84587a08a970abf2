"""An unexpected exception in the gateway is logged with its type, message and traceback as
structured fields (it used to be `{"exc_info": true, "event": "gateway.unhandled"}` and nothing
else), and the client still gets ClickHouse's error shape."""

from __future__ import annotations

import json

from werkzeug.test import Client

from devtools.chgateway.app import Gateway
from devtools.settings import DevSettings
from quacknet.logs import configure_logging
from tests.support.gateway import basic_auth


class CrashingEngine:
    """Stands in for an engine failing in a way the gateway did not foresee."""

    version, timezone = "26.9", "UTC"

    def session(self, session_id, timeout_s, check):
        raise RuntimeError("the engine fell over: boom")


def test_an_unhandled_exception_is_logged_with_type_message_and_traceback(tmp_path, capsys):
    settings = DevSettings(home=tmp_path, clickhouse_password="pw", log_json=True)
    configure_logging(settings)
    client = Client(Gateway(settings, CrashingEngine()))
    response = client.post("/?query_id=q-1", data=b"SELECT 1", headers=basic_auth(settings.clickhouse_user, "pw"))
    assert response.status_code == 500
    assert response.headers["X-ClickHouse-Exception-Code"] == "1001"
    assert b"RuntimeError: the engine fell over: boom" in response.data

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [line] = [entry for entry in lines if entry["event"] == "gateway.unhandled"]
    assert line["level"] == "error" and line["query_id"] == "q-1"
    assert "exc_info" not in line
    [exc] = line["exception"]
    assert (exc["exc_type"], exc["exc_value"]) == ("RuntimeError", "the engine fell over: boom")
    frames = [(frame["filename"].rsplit("/", 1)[-1], frame["name"]) for frame in exc["frames"]]
    assert ("app.py", "dispatch") in frames and frames[-1] == ("test_gateway_logging.py", "session")
    assert all("locals" not in frame for frame in exc["frames"])  # a frame's locals may hold the password
