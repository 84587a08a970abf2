"""The short soak: the whole local stack on its own ports, under load through the real API, with
every fault injected (compressed), then the exact audit. No scan lost, none counted twice."""

from __future__ import annotations

import pytest

from devtools import soak
from devtools.cli import start_services, stop_services
from devtools.services import stack
from devtools.settings import DevSettings
from tests.support.stack import own_ports


@pytest.fixture
def own_stack(tmp_path):
    """Faults stop the broker and the gateway: this stack is the soak's alone."""
    settings = own_ports(DevSettings(), tmp_path / "qn",
                         api_delivery_timeout_ms=4000, api_spool_resend_interval_s=0.5, loader_retry_max_s=2.0)
    try:
        assert start_services(settings, stack(settings)), "the soak's stack did not start (see its logs)"
        yield settings
    finally:
        stop_services(settings, stack(settings))


def test_short_soak_with_every_fault_loses_nothing_and_doubles_nothing(own_stack):
    config = soak.SoakConfig(duration_s=80, rate=300, clients=2, batch=20, poison=10, outage_s=6, drain_timeout_s=240)
    report = soak.run(own_stack, config)
    print(report.table())
    assert [name for name, _, _ in report.faults] == list(soak.FAULTS)
    assert all(outcome == "ok" for _, _, outcome in report.faults), report.faults
    assert report.accepted > 0.8 * config.rate * config.duration_s
    assert (report.missing, report.duplicated, report.unexpected, report.unanswered) == (0, 0, 0, 0), report.table()
    assert report.stored == report.accepted
    assert report.dlq == report.poison_sent == 10 and report.dlq_unexpected == 0
    assert report.audit_dag == "success"
    assert report.ok
