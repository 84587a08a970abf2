"""QuackNet's Airflow plugin: the operations page and the coverage map in the UI's Browse menu,
served by the API server behind Airflow's login (logged out, a browser is sent to the login page).
Logic: quacknet/airflow/opsview.py (pages, app) and quacknet/airflow/opsdata.py (the figures)."""

from __future__ import annotations

import urllib.parse

from airflow.plugins_manager import AirflowPlugin


def _settings():
    from airflow.models.connection import Connection

    from quacknet.airflow.connections import settings_from_airflow

    return settings_from_airflow(get_connection=Connection.get_connection_from_secrets)


def _login_url(next_url: str) -> str:
    """Airflow's own login redirect (whatever auth manager is configured), which checks ``next``."""
    from airflow.api_fastapi.app import API_ROOT_PATH

    return f"{API_ROOT_PATH}api/v2/auth/login?{urllib.parse.urlencode({'next': next_url})}"


def _app():
    from airflow.api_fastapi.app import API_ROOT_PATH
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    from quacknet.airflow.opsdata import airflow_replay_runs
    from quacknet.airflow.opsview import create_app, default_run_url

    return create_app(_settings, dependencies=[requires_access_view(AccessView.PLUGINS)], login_url=_login_url,
                      runs=airflow_replay_runs, run_url=default_run_url(API_ROOT_PATH))


class QuackNetPlugin(AirflowPlugin):
    name = "quacknet"
    fastapi_apps = [{"app": _app(), "url_prefix": "/quacknet", "name": "QuackNet operations"}]
    external_views = [
        {"name": "QuackNet", "href": "quacknet/", "destination": "nav", "url_route": "quacknet", "category": "browse"},
        {"name": "Coverage map", "href": "quacknet/map", "destination": "nav", "url_route": "quacknet-map",
         "category": "browse"},
    ]
