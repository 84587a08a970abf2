"""A request body read the way a hostile client may send it.

werkzeug bounds a chunked body by silently stopping at ``MAX_CONTENT_LENGTH``, so a 5 MiB chunked
body would be parsed as its first 4 MiB. Here the raw stream is read to its end, and anything over
the limit is refused whole (413). A body whose framing is broken (bad chunk sizes, a connection
closed before Content-Length bytes) is a 400; one that stalls past the server's read timeout
(``api.workers``) is a 408. None of them reaches validation, so none can produce anything.
"""

from __future__ import annotations

from flask import Request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, RequestTimeout

CHUNK = 1 << 16
# What a WSGI server's input stream raises on broken framing: gunicorn's parse errors (a bad chunk
# size or terminator), IOErrors (a connection closed early), ValueErrors from other servers.
FRAMING_ERRORS = (ParseException, OSError, ValueError)


def read_body(request: Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise RequestEntityTooLarge(f"the body is {length} bytes; at most {limit} are accepted")
    stream = request.environ["wsgi.input"]
    chunks, size = [], 0
    try:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise RequestEntityTooLarge(f"the body is over {limit} bytes")
            chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout("the body did not arrive in time") from None
    except FRAMING_ERRORS as exc:
        raise BadRequest(f"malformed request body: {type(exc).__name__}: {exc}") from None
    if length is not None and size < length:
        raise BadRequest(f"the body ended after {size} of {length} bytes")
    return b"".join(chunks)
