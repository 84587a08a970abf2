"""gunicorn hooks for the ingest API: flush each worker's producer on exit, and drop a dead
worker's metric files so multiprocess gauges stay true."""

from prometheus_client import multiprocess


def worker_exit(server, worker):
    close = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("quacknet.close")
    if close:
        close()


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
