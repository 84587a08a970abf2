"""gunicorn settings of the local ClickHouse gateway that its command line cannot carry.

gunicorn clamps ``--limit-request-line`` to 8190 bytes (``gunicorn.http.message.MAX_REQUEST_LINE``)
and reads 0 as "unlimited", which its pure-Python parser scans in time quadratic in the line's
length: a 20 MiB URL cost 37 s of CPU before failing. ClickHouse accepts request lines up to
``http_max_uri_size`` = 1 MiB, and clickhouse-connect puts a command's query parameters there.
Lifting the clamp makes the command line's ``--limit-request-line``
(``DevSettings.gateway_max_uri_bytes``) the bound; a longer line is refused after that many bytes.
"""

from gunicorn.http import message

message.MAX_REQUEST_LINE = 1 << 62
