"""Session-wide fixtures: the real local stack, started once and stopped only if we started it.

Integration tests get their own Kafka topic and ClickHouse database, so they never
share state with each other or with a developer's running stack.
"""

from __future__ import annotations

import uuid

import pytest

from quacknet.devstack.services import CLICKHOUSE, KAFKA
from quacknet.devstack.supervisor import Supervisor
from quacknet.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings):
    """Kafka and ClickHouse, healthy. Reuses what already answers (a `make run` stack, or a real
    clickhouse-server named by QUACKNET_CLICKHOUSE_URL); starts the rest and stops it afterwards."""
    sup = Supervisor(settings)
    started = []
    for svc in (KAFKA, CLICKHOUSE):
        if _answers(svc, settings):
            continue
        sup.start(svc)
        started.append(svc)
    yield settings
    for svc in reversed(started):
        sup.stop(svc)


def _answers(svc, settings) -> bool:
    try:
        return bool(svc.healthy(settings))
    except Exception:
        return False


@pytest.fixture
def unique_name(request) -> str:
    base = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    return f"t_{base}_{uuid.uuid4().hex[:8]}"
