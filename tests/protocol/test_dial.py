"""
wstunnel.net.dial on real loopback sockets: success, refusal, the
connect timeout (on a task.Clock) and a cancelled attempt, with the
exception types Twisted's connector reports.
"""

from __future__ import annotations

import socket

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError, TimeoutError, UserError
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from tests.support import WAIT
from wstunnel.net.dial import dial
from wstunnel.net.stream import Stream


class Outcome(ClientFactory):
    protocol = Protocol

    def __init__(self) -> None:
        self.built: list[object] = []
        self.failures: list[Failure] = []
        self.made: defer.Deferred = defer.Deferred()
        self.failed: defer.Deferred = defer.Deferred()

    def buildProtocol(self, addr: object) -> Protocol:
        self.built.append(addr)
        protocol = Protocol()
        protocol.connectionMade = lambda: self.made.callback(protocol)  # type: ignore[method-assign]
        return protocol

    def clientConnectionFailed(self, connector: object, reason: Failure) -> None:
        self.failures.append(reason)
        self.failed.callback(None)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest_twisted.ensureDeferred
async def test_a_connection_is_made_and_its_timer_cancelled() -> None:
    clock = Clock()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        factory = Outcome()
        attempt = dial(reactor, clock, "127.0.0.1", port, factory, 3.0)
        assert [call.getTime() for call in clock.getDelayedCalls()] == [3.0]
        protocol = await factory.made.addTimeout(WAIT, reactor)
        assert clock.getDelayedCalls() == [], "the connect timeout is cancelled on success"
        assert isinstance(protocol.transport, Stream)
        assert factory.built == [IPv4Address("TCP", "127.0.0.1", port)]
        assert protocol.transport.getPeer() == factory.built[0]
        accepted, _ = listener.accept()
        with accepted:
            protocol.transport.direct_write(b"up")
            assert accepted.recv(2) == b"up"
            lost: defer.Deferred = defer.Deferred()
            protocol.connectionLost = lambda reason: lost.callback(None)  # type: ignore[method-assign]
            attempt.disconnect()
            await lost.addTimeout(WAIT, reactor)
            assert accepted.recv(2) == b"", "disconnect() of a made connection closes it"
        assert factory.failures == []


@pytest_twisted.ensureDeferred
async def test_a_refused_connect_is_connection_refused_and_reported_later() -> None:
    factory = Outcome()
    dial(reactor, Clock(), "127.0.0.1", _unused_port(), factory, 3.0)
    assert factory.failures == [], "never reported from inside the call"
    await factory.failed.addTimeout(WAIT, reactor)
    [reason] = factory.failures
    assert reason.check(ConnectionRefusedError) and "Connection refused" in reason.getErrorMessage()
    assert factory.built == []


def test_the_connect_timeout_is_twisted_timeout_error() -> None:
    clock = Clock()
    factory = Outcome()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        attempt = dial(reactor, clock, "127.0.0.1", listener.getsockname()[1], factory, 2.0)
        clock.advance(2.0)
        [reason] = factory.failures
        assert reason.check(TimeoutError) and reason.getErrorMessage() == "User timeout caused connection failure."
        assert attempt.fileno() == -1, "the socket is closed"
        attempt.disconnect()
        assert len(factory.failures) == 1


def test_disconnect_stops_an_attempt_as_a_user_error() -> None:
    clock = Clock()
    factory = Outcome()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        attempt = dial(reactor, clock, "127.0.0.1", listener.getsockname()[1], factory, 2.0)
        attempt.disconnect()
        [reason] = factory.failures
        assert reason.check(UserError) and clock.getDelayedCalls() == []
        clock.advance(2.0)
        assert len(factory.failures) == 1
