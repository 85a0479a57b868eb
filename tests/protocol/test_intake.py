"""net.intake.Intake: the head deadline, the keep-alive wait and the bound on early bytes."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from wstunnel.config.model import ClientLimits
from wstunnel.net.intake import EARLY_DATA_LIMIT, Intake

LIMITS = ClientLimits()


def intake() -> tuple[Intake, StringTransport, Clock, list[float]]:
    transport, clock, fired = StringTransport(), Clock(), []
    return Intake(transport, clock, LIMITS, lambda: fired.append(clock.seconds())), transport, clock, fired


def test_the_head_deadline_runs_from_the_start() -> None:
    reader, _, clock, fired = intake()
    clock.advance(LIMITS.header_timeout)
    assert fired == [LIMITS.header_timeout]


def test_an_idle_wait_becomes_the_head_deadline_at_the_first_byte() -> None:
    reader, _, clock, fired = intake()
    reader.stop_deadline()
    reader.await_next(keepalive_timeout=LIMITS.header_timeout * 10)
    clock.advance(5)
    reader.push(b"G")
    clock.advance(LIMITS.header_timeout)
    assert fired == [5 + LIMITS.header_timeout]


def test_a_pipelined_head_gets_the_head_deadline_at_once() -> None:
    reader, _, clock, fired = intake()
    reader.stop_deadline()
    reader.push(b"GET / HT")
    reader.await_next(keepalive_timeout=LIMITS.header_timeout * 10)
    clock.advance(LIMITS.header_timeout)
    assert fired == [LIMITS.header_timeout]


def test_early_bytes_pause_reading_past_the_limit_until_resumed() -> None:
    reader, transport, _, _ = intake()
    reader.hold(b"x" * EARLY_DATA_LIMIT)
    assert transport.producerState == "producing"
    reader.hold(b"x")
    assert transport.producerState == "paused"
    reader.resume()
    assert transport.producerState == "producing"
    assert len(reader.gate.take_rest()) == EARLY_DATA_LIMIT + 1
