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
        if self.process(service) is not None:
            if self.wait_healthy(service, self.settings.service_start_timeout_s):
                return self.status(service), False
            raise ServiceError(f"{service.name} runs (pid file {self.pid_file(service)}) but is not healthy; see {self.log_file(service)}")
        for port in service.ports(self.settings):
            if port_open("127.0.0.1", port):
                raise ServiceError(f"{service.name}: port {port} is already in use by a process this stack did not start")
        for d in (self.settings.run_dir, self.settings.log_dir, self.settings.data_dir(service.name)):
            d.mkdir(parents=True, exist_ok=True)
        if service.prepare:
            service.prepare(self.settings)
        started = time.monotonic()
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
        if not self.wait_healthy(service, self.settings.service_start_timeout_s, child):
            self.stop(service)
            raise ServiceError(f"{service.name} did not become healthy; last log lines:\n{self.tail(service)}")
        log.info("service.healthy", service=service.name, pid=child.pid, seconds=round(time.monotonic() - started, 2))
        return self.status(service), True

    def child_env(self, service: Service) -> dict[str, str]:
        """The settings as QUACKNET_* variables, and the project root importable (devtools and
        api are not installed packages; each service runs in its own data dir)."""
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "PYTHONPATH": path, **self.settings.to_env(), **service.env(self.settings)}

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
        proc = self.process(service)
        if proc is None:
            return False
        sig = signal.SIGKILL if kill else signal.SIGTERM
        try:
            group = [proc, *proc.children(recursive=True)]  # before the signal: dead parents lose their children
        except psutil.NoSuchProcess:
            group = [proc]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        _, alive = psutil.wait_procs(group, timeout=service.stop_timeout_s)
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
        return True

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
