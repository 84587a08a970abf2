"""A gunicorn gthread worker whose connections time out while a request is being read.

gunicorn's threaded worker reads a request's headers and body from a blocking socket with no
deadline: a client that sends half a request (partial headers, a Content-Length larger than what
it sends, an unterminated chunked body) holds a worker thread for as long as it likes. Here the
accepted socket's blocking mode carries a timeout, so such a read fails after ``READ_TIMEOUT_S``
and the connection is closed (or, for a body the app is reading, answered 408).
"""

from __future__ import annotations

import errno
import json
import socket

from gunicorn import util
from gunicorn.workers import gthread

READ_TIMEOUT_S = 10.0


class TimedSocket(socket.socket):
    """Blocking, but a read or write that stalls for ``READ_TIMEOUT_S`` raises ``TimeoutError``."""

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(READ_TIMEOUT_S)
        else:
            super().setblocking(False)


class ThreadWorker(gthread.ThreadWorker):
    """``--worker-class api.workers.ThreadWorker``: gthread with timed connections."""

    def accept(self, listener):
        try:
            plain, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        sock = TimedSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
        self.nr_conns += 1
        sock.setblocking(True)
        self.enqueue_req(gthread.TConn(self.cfg, sock, client_addr, listener.getsockname()))


def _json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own answers (a request it cannot parse) in the API's one error shape."""
    body = json.dumps({"error": reason.lower().replace(" ", "_"), "message": mesg or reason, "details": []}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class ApiWorker(ThreadWorker):
    """``--worker-class api.workers.ApiWorker``: timed connections, and every error gunicorn writes
    itself (a malformed request line, headers or chunk framing) answered as JSON, as the API's are.
    gunicorn offers no hook for that body; its writer is replaced in this worker process only."""

    def init_process(self):
        util.write_error = _json_error
        super().init_process()
