"""python -m devtools: the local development stack behind the Makefile.

  run [SERVICE...]     install what is missing and start the stack (or the named services)
  stop [SERVICE...]    stop the stack (SIGTERM, then wait)
  status [SERVICE...]  pid, ports and health of each service (exit 3 if one is not healthy)
  install              resolve the Kafka jars from Maven Central
  kafka-tool TOOL ...  run one of Kafka's command-line tools
  soak                 the whole stack under load with injected faults, then an exact audit
  compose-env          write .env with generated secrets for docker compose
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time

from devtools import credentials, kafka
from devtools.services import by_name
from devtools.settings import PROJECT_ROOT, DevSettings
from devtools.supervisor import ServiceError, Supervisor
from quacknet.errors import QuackNetError
from quacknet.logs import configure_logging


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _status_rows(sup: Supervisor, services) -> tuple[list[list[str]], bool]:
    rows, ok = [["SERVICE", "PID", "PORTS", "STATE", "WHERE"]], True
    for svc in services:
        st = sup.status(svc)
        state = "healthy" if st.healthy else ("unhealthy" if st.running else "stopped")
        ok &= st.healthy
        rows.append([st.name, str(st.pid or "-"), ",".join(map(str, st.ports)), state, st.where])
    return rows, ok


def _groups(services) -> list[list]:
    """Consecutive services of one group together (a cluster's nodes), every other service alone."""
    chunks: list[list] = []
    for svc in services:
        if chunks and svc.group is not None and chunks[-1][-1].group == svc.group:
            chunks[-1].append(svc)
        else:
            chunks.append([svc])
    return chunks


def ensure_services(settings: DevSettings, services, echo=print) -> list:
    """Start each service unless it runs (a group's nodes together), then its after-start step;
    returns the services started here. Raises on the first failure."""
    sup, started = Supervisor(settings), []
    for chunk in _groups(services):
        t0 = time.monotonic()
        try:
            results = sup.start_group(chunk)
            for svc, (_, started_now) in zip(chunk, results):
                echo(f"{svc.name}: {'started' if started_now else 'already running'} ({time.monotonic() - t0:.1f}s)")
                if started_now:
                    started.append(svc)
            for svc in chunk:
                for line in svc.after_start(settings) if svc.after_start else []:
                    echo(f"  {line}")
        except (QuackNetError, TimeoutError, OSError) as err:
            raise ServiceError(f"{', '.join(svc.name for svc in chunk)}: {err}") from err
    return started


def start_services(settings: DevSettings, services, echo=print) -> bool:
    """Start each service (unless it runs) and its after-start step; False on the first failure."""
    try:
        ensure_services(settings, services, echo)
    except (QuackNetError, TimeoutError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return False
    return True


def stop_services(settings: DevSettings, services, echo=print) -> None:
    """Stop in reverse start order, a group's services (a cluster's nodes) at once."""
    sup = Supervisor(settings)
    for chunk in reversed(_groups(services)):
        stopped = sup.stop_group(list(reversed(chunk)))
        for svc in reversed(chunk):
            echo(f"{svc.name}: {'stopped' if stopped[svc.name] else 'not running'}")


def cmd_run(settings: DevSettings, args) -> int:
    sup = Supervisor(settings)
    try:
        services = by_name(settings, args.services, whole_groups=True)
    except SystemExit as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not start_services(settings, services):
        return 1
    rows, _ = _status_rows(sup, services)
    print(_table(rows))
    print(f"logs: {settings.log_dir}/<service>.log   state: {settings.home}")
    if settings.credentials_file.exists():
        print(f"credentials ({settings.credentials_file}):")
        print(settings.credentials_file.read_text().rstrip())
    return 0


def cmd_stop(settings: DevSettings, args) -> int:
    stop_services(settings, by_name(settings, args.services, include_running=True))
    return 0


def cmd_status(settings: DevSettings, args) -> int:
    rows, ok = _status_rows(Supervisor(settings), by_name(settings, args.services, include_running=True))
    print(_table(rows))
    return 0 if ok else 3


def cmd_install(settings: DevSettings, args) -> int:
    t0 = time.monotonic()
    try:
        path = kafka.install_jars(settings)
    except kafka.KafkaInstallError as err:
        print(f"blocked: {err}", file=sys.stderr)
        return 2
    print(f"kafka {settings.kafka_version} jars: {path} ({time.monotonic() - t0:.1f}s)")
    return 0


def cmd_kafka_tool(settings: DevSettings, args) -> int:
    kafka.install_jars(settings)
    tool_args = args.args
    if tool_args and tool_args[0] == "--":
        tool_args = tool_args[1:]
    cmd = kafka.tool_command(settings, args.tool, tool_args)
    os.execvp(cmd[0], cmd)
    return 0  # not reached


def cmd_soak(settings: DevSettings, args) -> int:
    """Start the stack (or use the running one), run the soak, print the summary; non-zero on any loss."""
    from devtools import soak

    if not start_services(settings, by_name(settings, None)):
        return 1
    known = soak.faults_for(settings)
    faults = tuple(f for f in args.faults.split(",") if f) if args.faults is not None else known
    unknown = sorted(set(faults) - set(known))
    if unknown:
        print(f"error: unknown fault(s) {', '.join(unknown)} on {settings.kafka_nodes} Kafka node(s); known: "
              f"{', '.join(known)}", file=sys.stderr)
        return 2
    config = soak.SoakConfig(duration_s=args.duration, rate=args.rate, clients=args.clients, faults=faults,
                             outage_s=args.outage)
    report = soak.run(settings, config, echo=lambda line: print(line, flush=True))  # progress, even into a file
    print(report.table())
    return 0 if report.ok else 1


def cmd_compose_env(settings: DevSettings, args) -> int:
    """Write .env for docker compose with generated secrets: once, then only the keys it lacks are added
    (a .env from before the Kafka logins gets them; no value already there is changed)."""
    path = PROJECT_ROOT / ".env"
    current = credentials.read_file(path)
    values = {
        "QUACKNET_CLICKHOUSE_PASSWORD": secrets.token_urlsafe(24),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_ADMIN_USER": "admin",
        # Kafka: the operators' principal, the brokers' own logins, one per service (see docker-compose.yaml)
        "KAFKA_ADMIN_USER": credentials.KAFKA_ADMIN_USER,
        **{key: secrets.token_urlsafe(24) for key in credentials.KAFKA_SECRETS},
    }
    missing = {k: v for k, v in values.items() if k not in current}
    if not missing:
        print(f"{path} exists and has every key; left as it is")
        return 0
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    with open(path, "a") as out:
        if current and not path.read_text().endswith("\n"):
            out.write("\n")
        out.write("".join(f"{k}={v}\n" for k, v in missing.items()))
    print(f"{'added ' + ', '.join(missing) + ' to' if current else 'wrote'} {path} (mode 600)")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m devtools", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = root.add_subparsers(dest="command", required=True)
    for name, fn, help_ in [
        ("run", cmd_run, "install what is missing and start the local stack"),
        ("stop", cmd_stop, "stop the local stack (SIGTERM, then wait)"),
        ("status", cmd_status, "pid, ports and health of each service"),
    ]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("services", nargs="*", help="service names (default: all)")
        p.set_defaults(fn=fn)
    sub.add_parser("install", help="resolve the Kafka jars from Maven Central").set_defaults(fn=cmd_install)
    sub.add_parser("compose-env", help="write .env with generated secrets for docker compose").set_defaults(fn=cmd_compose_env)
    p = sub.add_parser("soak", help="the whole stack under load with injected faults, then an exact audit")
    p.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    p.add_argument("--rate", type=int, default=3000, help="scans per second offered (default 3000)")
    p.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    p.add_argument("--outage", type=float, default=15, help="seconds the broker and the gateway stay down")
    p.add_argument("--faults", default=None, help="comma-separated subset (default: all; empty: none)")
    p.set_defaults(fn=cmd_soak)
    p = sub.add_parser("kafka-tool", help="run one of Kafka's command-line tools, e.g. kafka-consumer-groups --list")
    p.add_argument("tool", choices=sorted(kafka.TOOLS))
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_kafka_tool)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = DevSettings()
    configure_logging(settings)
    return args.fn(settings, args)
