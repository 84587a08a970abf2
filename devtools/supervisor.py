"""A small supervisor for the local stack: start in the background, wait healthy, stop, status.

Each service is declared once as a ``Service`` (command, health check, ports, an
optional prepare step); the supervisor owns the conventions every service shares:
``run/<name>.pid`` (pid and start time, so a recycled pid is never mistaken for
ours), ``logs/<name>.log`` and ``data/<name>/`` under the state dir. Adding a
service to the stack is one more ``Service`` in ``services.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from devtools.settings import PROJECT_ROOT, DevSettings
from quacknet.errors import QuackNetError
from quacknet.logs import get_logger

log = get_logger(__name__)


class ServiceError(QuackNetError):
    """A service could not be started or stopped; the message says why and where its log is."""


@dataclass(frozen=True)
class Service:
    name: str
    command: Callable[[DevSettings], list[str]]
    healthy: Callable[[DevSettings], bool]
    ports: Callable[[DevSettings], list[int]]
    describe: Callable[[DevSettings], str]
    prepare: Callable[[DevSettings], None] | None = None
    env: Callable[[DevSettings], dict[str, str]] = field(default=lambda s: {})
    # Idempotent setup once the service is healthy (topics, migrations); returns what it changed.
    after_start: Callable[[DevSettings], list[str]] | None = None
    stop_timeout_s: float = 60.0
    # Services of one group start together and are waited for together (a cluster's nodes: none is
    # healthy before a quorum of them runs), and stop together (a node's controlled shutdown needs
    # the quorum that its peers' shutdowns would take away one by one).
    group: str | None = None


@dataclass(frozen=True)
class Status:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    ports: list[int]
    where: str


def free_port() -> int:
    """A loopback port nobody listens on now (for extra test and benchmark instances)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# The Kafka logins kept from a service that runs as a principal of its own (the API, the loader, Airflow:
# Service.env gives its login): never the operators', the brokers' or another service's password.
KAFKA_SECRETS = frozenset(f"QUACKNET_KAFKA_{name}PASSWORD" for name in ("", "BROKER_", "CONTROLLER_", "API_", "LOADER_", "AIRFLOW_"))


class Supervisor:
    def __init__(self, settings: DevSettings):
        self.settings = settings
        self._children: dict[str, subprocess.Popen] = {}

    def pid_file(self, service: Service):
        return self.settings.run_dir / f"{service.name}.pid"

    def log_file(self, service: Service):
        return self.settings.log_dir / f"{service.name}.log"

    def process(self, service: Service) -> psutil.Process | None:
        """Our live process for the service, or None (a stale pid file is removed)."""
        path = self.pid_file(service)
        try:
            pid_text, started_text = path.read_text().split()
            proc = psutil.Process(int(pid_text))
            if abs(proc.create_time() - float(started_text)) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        path.unlink(missing_ok=True)
        return None

    def status(self, service: Service) -> Status:
        proc = self.process(service)
        healthy = proc is not None and _safe(service.healthy, self.settings)
        return Status(
            service.name, proc.pid if proc else None, proc is not None, healthy,
            service.ports(self.settings), service.describe(self.settings),
        )

    def start(self, service: Service) -> tuple[Status, bool]:
        """Start the service unless it already runs; returns (status, started_now)."""
        [result] = self.start_group([service])
        return result

    def start_group(self, services: list[Service]) -> list[tuple[Status, bool]]:
        """Launch each service that does not run, then wait until every one is healthy; returns
        (status, started_now) per service. If one does not become healthy, those launched here are
        stopped again and a ServiceError carries its last log lines."""
        launched: dict[str, tuple[subprocess.Popen, float]] = {}
        try:
            for service in services:
                if self.process(service) is None:
                    launched[service.name] = (self._launch(service), time.monotonic())
            deadline = time.monotonic() + self.settings.service_start_timeout_s
            for service in services:
                child, started = launched.get(service.name, (None, time.monotonic()))
                if not self.wait_healthy(service, max(0.0, deadline - time.monotonic()), child):
                    if child is None:
                        raise ServiceError(f"{service.name} runs (pid file {self.pid_file(service)}) but is not healthy; "
                                           f"see {self.log_file(service)}")
                    raise ServiceError(f"{service.name} did not become healthy; last log lines:\n{self.tail(service)}")
                if child is not None:
                    log.info("service.healthy", service=service.name, pid=child.pid,
                             seconds=round(time.monotonic() - started, 2))
        except BaseException:
            self.stop_group([svc for svc in services if svc.name in launched])
            raise
        return [(self.status(svc), svc.name in launched) for svc in services]

    def _launch(self, service: Service) -> subprocess.Popen:
        for port in service.ports(self.settings):
            if port_open("127.0.0.1", port):
                raise ServiceError(f"{service.name}: port {port} is already in use by a process this stack did not start")
        for d in (self.settings.run_dir, self.settings.log_dir, self.settings.data_dir(service.name)):
            d.mkdir(parents=True, exist_ok=True)
        if service.prepare:
            service.prepare(self.settings)
        with open(self.log_file(service), "ab") as out:
            child = subprocess.Popen(
                service.command(self.settings), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=self.child_env(service),
                cwd=self.settings.data_dir(service.name),
            )
        self._children[service.name] = child
        proc = psutil.Process(child.pid)
        self.pid_file(service).write_text(f"{child.pid} {proc.create_time()}\n")
        log.info("service.starting", service=service.name, pid=child.pid)
        return child

    def child_env(self, service: Service) -> dict[str, str]:
        """The settings as QUACKNET_* variables, and the project root importable (devtools and
        api are not installed packages; each service runs in its own data dir)."""
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path, **self.settings.to_env()}
        own = service.env(self.settings)
        if "QUACKNET_KAFKA_PASSWORD" in own:  # a service with a principal of its own holds no other login
            env = {k: v for k, v in env.items() if k not in KAFKA_SECRETS}
        return {**env, **own}

    def wait_healthy(self, service: Service, timeout_s: float, child: subprocess.Popen | None = None) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                return False
            if _safe(service.healthy, self.settings):
                return True
            time.sleep(0.2)
        return False

    def stop(self, service: Service, kill: bool = False) -> bool:
        """SIGTERM the service's process group and wait (SIGKILL after the timeout, or at once if kill)."""
        return self.stop_group([service], kill)[service.name]

    def stop_group(self, services: list[Service], kill: bool = False) -> dict[str, bool]:
        """Signal every service's process group at once, then wait for all (SIGKILL after each one's
        timeout); returns, by name, whether it was running."""
        sig = signal.SIGKILL if kill else signal.SIGTERM
        signalled: list[tuple[Service, psutil.Process, list[psutil.Process]]] = []
        for service in services:
            proc = self.process(service)
            if proc is None:
                continue
            try:
                group = [proc, *proc.children(recursive=True)]  # before the signal: dead parents lose their children
            except psutil.NoSuchProcess:
                group = [proc]
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            signalled.append((service, proc, group))
        started = time.monotonic()
        for service, proc, group in signalled:
            left = max(0.0, started + service.stop_timeout_s - time.monotonic())
            _, alive = psutil.wait_procs(group, timeout=left)
            if alive:
                log.warning("service.kill", service=service.name, pid=proc.pid)
                for p in alive:
                    p.kill()
                psutil.wait_procs(alive, timeout=10)
            child = self._children.pop(service.name, None)
            if child is not None:
                child.wait(timeout=10)
            self.pid_file(service).unlink(missing_ok=True)
            log.info("service.stopped", service=service.name, pid=proc.pid, signal=sig.name)
        stopped = {service.name for service, _, _ in signalled}
        return {service.name: service.name in stopped for service in services}

    def tail(self, service: Service, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file(service).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _safe(check: Callable[[DevSettings], bool], settings: DevSettings) -> bool:
    try:
        return bool(check(settings))
    except Exception:
        return False
