"""The supervisor's conventions with a tiny real service (python -m http.server), no Kafka needed."""

import socket
import sys
import urllib.request

import pytest

from devtools.settings import DevSettings
from devtools.supervisor import Service, ServiceError, Supervisor, free_port, port_open


def _http_service(port: int) -> Service:
    def healthy(_):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as resp:
            return resp.status == 200

    return Service(
        name="web", command=lambda s: [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        healthy=healthy, ports=lambda s: [port], describe=lambda s: f"http://127.0.0.1:{port}", stop_timeout_s=10,
    )


@pytest.fixture
def sup(tmp_path):
    return Supervisor(DevSettings(home=tmp_path, service_start_timeout_s=20))


def test_start_status_start_again_stop(sup):
    svc = _http_service(free_port())
    status, started = sup.start(svc)
    try:
        assert started and status.healthy and status.pid
        assert sup.pid_file(svc).exists() and sup.log_file(svc).exists()
        again, started_again = sup.start(svc)
        assert not started_again and again.pid == status.pid
    finally:
        assert sup.stop(svc)
    after = sup.status(svc)
    assert not after.running and not after.healthy and not sup.pid_file(svc).exists()
    assert not port_open("127.0.0.1", svc.ports(sup.settings)[0])
    assert sup.stop(svc) is False


def test_a_stale_pid_file_is_not_mistaken_for_a_running_service(sup):
    svc = _http_service(free_port())
    sup.settings.run_dir.mkdir(parents=True)
    sup.pid_file(svc).write_text("1 12345.0\n")  # pid 1 exists, but was not started at that time
    assert sup.process(svc) is None and not sup.pid_file(svc).exists()


def test_a_service_that_dies_at_start_reports_its_log(sup):
    svc = Service(name="broken", command=lambda s: [sys.executable, "-c", "print('no config, giving up'); raise SystemExit(3)"],
                  healthy=lambda s: False, ports=lambda s: [], describe=lambda s: "")
    with pytest.raises(ServiceError, match="no config, giving up"):
        sup.start(svc)
    assert not sup.pid_file(svc).exists()


def test_a_port_taken_by_a_stranger_is_reported(sup):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        svc = _http_service(s.getsockname()[1])
        with pytest.raises(ServiceError, match="already in use"):
            sup.start(svc)


def test_a_group_is_launched_together_and_stopped_together(tmp_path):
    """Like a cluster's nodes: neither is healthy before both run, so one at a time could never start."""
    sup = Supervisor(DevSettings(home=tmp_path, service_start_timeout_s=20))
    ports = [free_port(), free_port()]

    def node(i: int) -> Service:
        return Service(name=f"node-{i}", command=lambda s: [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                                            str(ports[i])],
                       healthy=lambda s: all(port_open("127.0.0.1", p) for p in ports), ports=lambda s: [ports[i]],
                       describe=lambda s: "", group="pair", stop_timeout_s=10)

    pair = [node(0), node(1)]
    with pytest.raises(ServiceError, match="node-0 did not become healthy"):
        Supervisor(DevSettings(home=tmp_path, service_start_timeout_s=2)).start(pair[0])
    results = sup.start_group(pair)
    try:
        assert [started for _, started in results] == [True, True] and all(st.healthy for st, _ in results)
    finally:
        assert sup.stop_group(pair) == {"node-0": True, "node-1": True}
    assert not any(port_open("127.0.0.1", p) for p in ports)


def test_a_service_with_a_kafka_principal_of_its_own_gets_no_other_login(tmp_path):
    from devtools.services import API, CLICKHOUSE, LOADER
    from devtools.supervisor import KAFKA_SECRETS

    settings = DevSettings(home=tmp_path)
    sup = Supervisor(settings)
    for service, name in ((API, "api"), (LOADER, "loader")):
        env = sup.child_env(service)
        user, password = settings.kafka_login(name)
        assert (env["QUACKNET_KAFKA_USERNAME"], env["QUACKNET_KAFKA_PASSWORD"]) == (user, password)
        assert not set(env) & (KAFKA_SECRETS - {"QUACKNET_KAFKA_PASSWORD"})
        others = {settings.kafka_password, settings.kafka_broker_password, settings.kafka_controller_password,
                  *(getattr(settings, f"kafka_{o}_password") for o in ("api", "loader", "airflow") if o != name)}
        assert not {s.get_secret_value() for s in others} & set(env.values()), name
    assert sup.child_env(CLICKHOUSE)["QUACKNET_KAFKA_PASSWORD"] == settings.kafka_password.get_secret_value()  # dev tooling
