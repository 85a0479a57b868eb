"""net.intake.Intake while a request is served: no deadline, and one timer moved from request to request."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from wstunnel.config.model import ClientLimits
from wstunnel.net.intake import Intake

LIMITS = ClientLimits()


def intake() -> tuple[Intake, Clock, list[float]]:
    clock, fired = Clock(), []
    return Intake(StringTransport(), clock, LIMITS, lambda: fired.append(clock.seconds())), clock, fired


def test_a_keep_alive_connection_moves_one_timer_from_request_to_request() -> None:
    reader, clock, fired = intake()
    (timer,) = clock.getDelayedCalls()
    for _ in range(3):
        reader.push(b"GET / HTTP/1.1\r\n\r\n")
        reader.serve()
        assert reader.gate.feed(b"") is not None  # the head is taken
        clock.advance(1)
        reader.await_next(keepalive_timeout=LIMITS.header_timeout * 10)
        assert clock.getDelayedCalls() == [timer] and timer.getTime() == clock.seconds() + LIMITS.header_timeout * 10
    assert fired == []


def test_no_deadline_comes_while_a_request_is_served() -> None:
    reader, clock, fired = intake()
    reader.serve()
    clock.advance(LIMITS.header_timeout * 3)
    assert fired == [] and clock.getDelayedCalls() == []
    reader.await_next(keepalive_timeout=5)
    clock.advance(5)
    assert fired == [LIMITS.header_timeout * 3 + 5]


def test_stopping_the_deadline_while_serving_leaves_no_timer() -> None:
    reader, clock, fired = intake()
    reader.serve()
    reader.stop_deadline()
    assert clock.getDelayedCalls() == []
