"""Airflow's log servers for the local stack, on loopback only.

The api-server asks a running task's log from the log server of the component that runs it: the
scheduler's (tasks run by the LocalExecutor, ``[logging] worker_log_server_port``) or the
triggerer's (``trigger_log_server_port``). Airflow 3.3 starts both on every interface:
``airflow.utils.serve_logs.core.serve_logs`` hands uvicorn ``host=""`` and no setting changes it.
So the local stack starts the scheduler and the triggerer with ``--skip-serve-logs`` and serves
Airflow's own log-server app here, bound to 127.0.0.1 on the ports DevSettings gives (two stacks
side by side, e.g. a test's own Airflow next to ``make run``, use different ones).
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"
APP = "airflow.utils.serve_logs.log_server:get_app"


def loopback_hostname() -> str:
    """``[core] hostname_callable``: tasks and the triggerer report 127.0.0.1 as their host, which
    is where the api-server then fetches their served logs (the servers listen nowhere else)."""
    return LOOPBACK


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    return sock


def main() -> None:
    import uvicorn

    from devtools.settings import DevSettings

    settings = DevSettings()
    sockets = [_listen(port) for port in (settings.airflow_worker_log_port, settings.airflow_triggerer_log_port)]
    config = uvicorn.Config(APP, factory=True, log_config=None, access_log=False, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main()
