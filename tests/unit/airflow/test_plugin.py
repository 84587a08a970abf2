"""The QuackNet plugin as Airflow's plugin manager loads it (no service needed)."""

from __future__ import annotations


def test_airflow_loads_the_plugin_with_its_app_and_nav_entry():
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    views, _ = plugins_manager._get_ui_plugins()
    assert [a["url_prefix"] for a in apps if a["name"] == "QuackNet operations"] == ["/quacknet"]
    assert [v["href"] for v in views if v["url_route"] == "quacknet"] == ["quacknet/"]
