"""A gunicorn gthread worker whose connections time out while a request is being read.

gunicorn's threaded worker reads a request's headers and body from a blocking socket with no
deadline: a client that sends half a request (partial headers, a Content-Length larger than what
it sends, an unterminated chunked body) holds a worker thread for as long as it likes. Here the
accepted socket's blocking mode carries a timeout, so such a read fails after ``READ_TIMEOUT_S``
and the connection is closed (or, for a body the app is reading, answered 408).
"""

from __future__ import annotations

import errno
import socket

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
