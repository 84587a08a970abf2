"""One vocabulary for failure, shared by the API, the loader, replays, the DAG tasks and the CLIs.

Every error QuackNet raises on purpose is a ``QuackNetError`` of one of three kinds, because the
kind decides what the caller does with it:

- ``InvalidInput``: the request or its parameters are wrong. Retrying cannot help; the message
  says what to change. An API answers 4xx, a DAG task fails at once (no retry), a CLI exits 2.
- ``Conflict``: the input is fine but the system is not in a state that allows it (a consumer
  group still has members, a topic has more partitions than declared, the warehouse schema is
  behind). Waiting alone does not help; an operator acts on the message.
- ``Unavailable``: a dependency (Kafka, ClickHouse, the spool) is down, slow or saturated.
  Retried with backoff (``quacknet.retry``) where a caller can wait; answered 503 where it cannot.

``retriable`` is the one question callers ask; nothing inspects messages to decide. ``code`` is
the machine-readable name an API answers with.
"""

from __future__ import annotations


class QuackNetError(Exception):
    """Base of every error QuackNet raises on purpose."""

    retriable = False
    code = "error"


class InvalidInput(QuackNetError, ValueError):
    """Wrong input (a request, a form parameter, a spec): fix it and ask again."""

    code = "invalid_input"


class Conflict(QuackNetError):
    """The system's state forbids this now; the message says what an operator must do."""

    code = "conflict"


class SchemaBehind(Conflict):
    """The ClickHouse schema is older than this code: apply the migrations first."""

    code = "schema_behind"


class Unavailable(QuackNetError):
    """A dependency is down, slow or saturated: retry later."""

    retriable = True
    code = "unavailable"


class Saturated(Unavailable):
    """A bounded queue (the producer's, the spool) is full: refuse new work instead of hanging."""

    code = "saturated"


def is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, QuackNetError) and exc.retriable
