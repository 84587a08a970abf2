"""gunicorn hooks for the ingest API: tune each worker's garbage collector once the app is built,
flush its producer on exit, and drop a dead worker's metric files so multiprocess gauges stay true."""

from prometheus_client import multiprocess

from quacknet.runtime import tune_gc


def post_worker_init(worker):
    tune_gc()  # after the app is built: its objects are frozen out of collections


def worker_exit(server, worker):
    close = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("quacknet.close")
    if close:
        close()


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
