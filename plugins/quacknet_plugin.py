"""QuackNet's Airflow plugin: the operations page (latest audit, recent replays) in the UI's nav,
served by the API server behind Airflow's login. Logic: quacknet/airflow/opsview.py."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def _client():
    from airflow.models.connection import Connection

    from quacknet import warehouse
    from quacknet.airflow.connections import settings_from_airflow

    settings = settings_from_airflow(get_connection=Connection.get_connection_from_secrets)
    return warehouse.client(settings), settings.clickhouse_database


def _app():
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    from quacknet.airflow.opsview import create_app

    return create_app(_client, dependencies=[requires_access_view(AccessView.PLUGINS)])


class QuackNetPlugin(AirflowPlugin):
    name = "quacknet"
    fastapi_apps = [{"app": _app(), "url_prefix": "/quacknet", "name": "QuackNet operations"}]
    external_views = [{"name": "QuackNet", "href": "quacknet/", "destination": "nav", "url_route": "quacknet",
                       "category": "browse"}]
