import threading
import time

from quacknet.errors import Conflict, InvalidInput, QuackNetError, Saturated, SchemaBehind, Unavailable, is_retriable
from quacknet.retry import Backoff


def test_only_unavailable_kinds_are_retriable():
    assert is_retriable(Unavailable("down")) and is_retriable(Saturated("full"))
    for exc in (InvalidInput("bad"), Conflict("busy"), SchemaBehind("old"), QuackNetError("?"), RuntimeError("bug")):
        assert not is_retriable(exc)
    assert isinstance(InvalidInput("x"), ValueError)  # callers that catch ValueError still see bad input


def test_backoff_doubles_up_to_its_cap():
    backoff = Backoff(0.001, 0.004)
    delays = []
    for _ in range(5):
        delays.append(backoff.delay)
        assert backoff.sleep()
    assert delays == [0.001, 0.002, 0.004, 0.004, 0.004] and backoff.attempts == 5


def test_backoff_refuses_to_sleep_past_its_deadline():
    backoff = Backoff(0.05, 0.05, deadline_s=0.12)
    started = time.monotonic()
    assert backoff.sleep() and backoff.sleep()
    assert not backoff.sleep()  # would end after the deadline
    assert time.monotonic() - started < 0.2


def test_an_interrupt_cuts_a_sleep_short():
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    assert not Backoff(5, 5, interrupt=stop).sleep()
    assert time.monotonic() - started < 1
