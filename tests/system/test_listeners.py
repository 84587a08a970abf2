"""Every process of the local stack listens on loopback only: the whole stack (Kafka, the gateway,
Airflow's api-server, scheduler, dag-processor, triggerer and log servers, the API, the loader)
on ports of its own, and every listening socket of its processes and their children listed."""

from __future__ import annotations

import socket

import psutil
import pytest

from devtools.cli import start_services
from devtools.services import SERVICES
from devtools.settings import DevSettings
from devtools.supervisor import Supervisor
from tests.support.stack import own_ports

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}  # the JVM's IPv4 loopback is the IPv4-mapped form


@pytest.fixture(scope="module")
def whole_stack(tmp_path_factory):
    settings = own_ports(DevSettings(), tmp_path_factory.mktemp("listeners") / "qn")
    try:
        assert start_services(settings, SERVICES), "the stack did not start (see its logs)"
        yield settings
    finally:
        sup = Supervisor(settings)
        for svc in reversed(SERVICES):
            sup.stop(svc)


def _sockets(proc: psutil.Process) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of every socket the process listens on (TCP) or is bound to (UDP)."""
    found = []
    for conn in proc.net_connections(kind="inet"):
        if conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN:
            found.append(("tcp", conn.laddr.ip, conn.laddr.port))
        elif conn.type == socket.SOCK_DGRAM and conn.laddr and not conn.raddr:
            found.append(("udp", conn.laddr.ip, conn.laddr.port))
    return found


def test_every_listening_socket_of_the_stack_is_on_loopback(whole_stack):
    sup = Supervisor(whole_stack)
    listening = []
    for svc in SERVICES:
        proc = sup.process(svc)
        assert proc is not None, f"{svc.name} is not running"
        for p in [proc, *proc.children(recursive=True)]:
            try:
                listening += [(svc.name, p.name(), *sock) for sock in _sockets(p)]
            except psutil.NoSuchProcess:
                continue  # a short-lived child (a task runner) ended while we looked
    ports = {port for *_, port in listening}
    declared = {port for svc in SERVICES for port in svc.ports(whole_stack)}
    assert declared <= ports, f"declared ports not seen listening: {sorted(declared - ports)}"
    exposed = [entry for entry in listening if entry[3] not in LOOPBACK]
    assert exposed == [], f"listening beyond loopback: {exposed}"
    print("\n".join(f"{svc:24s} {name:24s} {proto} {ip}:{port}" for svc, name, proto, ip, port in sorted(listening)))
