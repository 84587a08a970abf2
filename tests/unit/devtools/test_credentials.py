"""The local ClickHouse login: generated once into credentials.env (mode 600) before anything starts,
reused, the same for every process and every service that talks to the gateway."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

import pytest

from devtools import airflow, credentials
from devtools.chgateway.app import create_app
from devtools.services import API, CLICKHOUSE, LOADER
from devtools.settings import DevSettings
from devtools.supervisor import Supervisor


def _clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("QUACKNET_CLICKHOUSE_"):
            monkeypatch.delenv(key)


def test_a_fresh_state_dir_gets_a_generated_login_before_anything_starts(monkeypatch, tmp_path):
    _clean_env(monkeypatch)
    settings = DevSettings(home=tmp_path / "fresh")
    path = tmp_path / "fresh" / "credentials.env"
    stored = credentials.read_file(path)
    assert stored["CLICKHOUSE_USER"] == settings.clickhouse_user == "quacknet"
    assert stored["CLICKHOUSE_PASSWORD"] == settings.clickhouse_password.get_secret_value()
    assert len(stored["CLICKHOUSE_PASSWORD"]) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_login_is_generated_once_and_reused(monkeypatch, tmp_path):
    _clean_env(monkeypatch)
    first = DevSettings(home=tmp_path)
    credentials.write(first, {"QUACKNET_API_KEY": "k"})  # other credentials come and go; the login stays
    second = DevSettings(home=tmp_path)
    password = first.clickhouse_password.get_secret_value()
    assert password and second.clickhouse_password.get_secret_value() == password
    assert credentials.read(second)["CLICKHOUSE_PASSWORD"] == password
    assert credentials.read(second)["QUACKNET_API_KEY"] == "k"


def _login(home: str, out) -> None:
    out.put(DevSettings(home=home).clickhouse_password.get_secret_value())


def test_processes_starting_together_on_a_fresh_clone_agree_on_one_password(monkeypatch, tmp_path):
    _clean_env(monkeypatch)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_login, args=(str(tmp_path), out)) for _ in range(6)]
    for p in procs:
        p.start()
    seen = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert len(seen) == 1 and seen == {credentials.read_file(tmp_path / "credentials.env")["CLICKHOUSE_PASSWORD"]}


def test_an_explicit_password_wins_over_the_generated_one(monkeypatch, tmp_path):
    _clean_env(monkeypatch)
    monkeypatch.setenv("QUACKNET_CLICKHOUSE_USER", "analyst")
    monkeypatch.setenv("QUACKNET_CLICKHOUSE_PASSWORD", "from-the-environment")
    settings = DevSettings(home=tmp_path)
    assert (settings.clickhouse_user, settings.clickhouse_password.get_secret_value()) == ("analyst", "from-the-environment")
    assert not (tmp_path / "credentials.env").exists()


def test_every_service_and_airflows_connection_get_the_login(monkeypatch, tmp_path):
    _clean_env(monkeypatch)
    settings = DevSettings(home=tmp_path)
    user, password = settings.clickhouse_user, settings.clickhouse_password.get_secret_value()
    assert password == credentials.read(settings)["CLICKHOUSE_PASSWORD"]
    sup = Supervisor(settings)
    for svc in (CLICKHOUSE, API, LOADER):
        env = sup.child_env(svc)
        assert (env["QUACKNET_CLICKHOUSE_USER"], env["QUACKNET_CLICKHOUSE_PASSWORD"]) == (user, password), svc.name
    conn = json.loads(airflow.env(settings)["AIRFLOW_CONN_CLICKHOUSE_DEFAULT"])
    assert (conn["login"], conn["password"]) == (user, password)
    for key, value in sup.child_env(LOADER).items():
        if key.startswith("QUACKNET_"):
            monkeypatch.setenv(key, value)
    child = DevSettings()  # what a child process rebuilds from the environment it is given
    assert child.clickhouse_password.get_secret_value() == password


def test_the_gateway_refuses_to_start_without_a_password(tmp_path):

    with pytest.raises(SystemExit, match="needs a password"):
        create_app(DevSettings(home=tmp_path, clickhouse_password=""))
