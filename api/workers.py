"""A gunicorn gthread worker whose connections time out while a request is being read.

gunicorn's threaded worker reads a request's headers and body from a blocking socket with no
deadline: a client that sends half a request (partial headers, a Content-Length larger than what
it sends, an unterminated chunked body) holds a worker thread for as long as it likes, and so does
one that trickles a byte every few seconds. Here every read of a request has two bounds: a read
that waits longer than ``QUACKNET_API_READ_TIMEOUT_S`` (10 s) fails, and the whole request (headers
and body) must have arrived within ``QUACKNET_API_REQUEST_DEADLINE_S`` (60 s: a 4 MiB batch at
70 KB/s) of the first read. The connection is then closed (or, for a body the app is reading,
answered 408). Writing the answer has its own timeout, whatever time the request took.
"""

from __future__ import annotations

import errno
import json
import socket
import time

from gunicorn import util
from gunicorn.workers import gthread

from quacknet.settings import Settings

READ_TIMEOUT_S = 10.0  # the defaults; a worker takes them from its settings at start


class TimedSocket(socket.socket):
    """Blocking, but each read waits at most ``read_timeout_s`` and all reads of one request end
    by ``request_deadline_s`` after it began (``TimeoutError``); a write waits ``read_timeout_s``."""

    read_timeout_s = READ_TIMEOUT_S
    request_deadline_s = 60.0
    _deadline = 0.0

    def setblocking(self, flag: bool) -> None:
        if flag:  # gunicorn switches to blocking mode as it starts on each request
            self._deadline = time.monotonic() + self.request_deadline_s
            self.settimeout(self.read_timeout_s)
        else:
            super().setblocking(False)

    def recv(self, *args, **kwargs):
        self._bound()
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self._bound()
        return super().recv_into(*args, **kwargs)

    def send(self, *args, **kwargs):
        self._unbound()
        return super().send(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._unbound()
        return super().sendall(*args, **kwargs)

    def _bound(self) -> None:
        if self.gettimeout() == 0.0:  # non-blocking: the poller's, not a request's
            return
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive within its deadline")
        self.settimeout(min(self.read_timeout_s, left))

    def _unbound(self) -> None:
        if self.gettimeout() != 0.0:
            self.settimeout(self.read_timeout_s)


class ThreadWorker(gthread.ThreadWorker):
    """``--worker-class api.workers.ThreadWorker``: gthread with timed connections."""

    def init_process(self):
        settings = Settings()
        TimedSocket.read_timeout_s = settings.api_read_timeout_s
        TimedSocket.request_deadline_s = settings.api_request_deadline_s
        super().init_process()

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
