"""Every DAG imports cleanly and fast, touches nothing at parse time, and follows the house rules."""

from __future__ import annotations

import time

import pytest

from tests.integration.airflow.conftest import load_dagbag

EXPECTED = {"kafka_topics", "replay_to_clickhouse", "offset_reset", "retention_audit"}


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    started = time.perf_counter()
    bag = load_dagbag()
    bag.parse_seconds = time.perf_counter() - started
    return bag


def test_dags_import_without_errors_within_the_parse_budget(dagbag):
    assert dagbag.import_errors == {}
    assert EXPECTED <= set(dagbag.dag_ids)
    assert dagbag.parse_seconds < 10


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_house_rules(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert dag.doc_md and len(dag.doc_md) > 80
    assert "quacknet" in dag.tags
    assert dag.schedule is None or dag_id == "retention_audit"  # operations are triggered by hand
    for task in dag.tasks:
        assert task.owner == "quacknet"
        assert task.retries is not None
    for name, param in dag.params.items():
        schema = param.schema if hasattr(param, "schema") else dag.params.get_param(name).schema
        assert schema.get("title") or schema.get("description"), f"{dag_id}: param {name} has no title"


def test_nothing_at_parse_time_touches_the_network(monkeypatch, airflow_db):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("a DAG file opened a network connection while parsing")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert load_dagbag().import_errors == {}
