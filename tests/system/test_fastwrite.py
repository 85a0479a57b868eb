"""
direct_writer: a send at once when nothing is queued, the transport's
queue otherwise, on real loopback TCP connections accepted by wstunnel's
own listener (wstunnel.net.listen), as the proxy accepts them.
"""

from __future__ import annotations

import socket

import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.testing import StringTransport

from tests.support import WAIT
from wstunnel.net.fastwrite import direct_writer
from wstunnel.net.listen import listen_on
from wstunnel.app.service import bind_socket


class Collect(protocol.Protocol):
    def __init__(self, want: int) -> None:
        self.want = want
        self.data = b""
        self.done = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if len(self.data) >= self.want and not self.done.called:
            self.done.callback(self.data)


async def connected_pair(want: int):
    """A server-side transport and the client protocol that reads from it."""
    accepted: defer.Deferred = defer.Deferred()
    server_factory = protocol.Factory.forProtocol(protocol.Protocol)
    server_factory.buildProtocol = lambda addr: _Accepted(accepted)  # type: ignore[method-assign]
    port = listen_on(bind_socket("127.0.0.1", 0), server_factory, reactor)
    reader = Collect(want)
    creator = protocol.ClientCreator(reactor, lambda: reader)
    await creator.connectTCP("127.0.0.1", port.getHost().port)
    server = await accepted.addTimeout(WAIT, reactor)
    return port, server.transport, reader


class _Accepted(protocol.Protocol):
    def __init__(self, accepted: defer.Deferred) -> None:
        self.accepted = accepted

    def connectionMade(self) -> None:
        self.accepted.callback(self)


def test_a_non_tcp_transport_keeps_its_own_write_even_when_it_is_rebound() -> None:
    """TLS transports rebind ``write`` (Twisted's aggregator, plain HTTP on a TLS port)."""
    transport = StringTransport()
    write = direct_writer(transport)
    write(b"a")
    other = StringTransport()
    transport.write = other.write  # type: ignore[method-assign]
    write(b"b")
    assert (transport.value(), other.value()) == (b"a", b"b")


@pytest_twisted.ensureDeferred
async def test_with_an_empty_queue_the_bytes_go_out_without_queueing() -> None:
    port, transport, reader = await connected_pair(5)
    try:
        direct_writer(transport)(b"hello")
        assert transport.dataBuffer == b"" and not transport._tempDataBuffer
        assert await reader.done.addTimeout(WAIT, reactor) == b"hello"
    finally:
        transport.loseConnection()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_bytes_behind_a_queue_wait_their_turn() -> None:
    port, transport, reader = await connected_pair(6)
    try:
        transport.write(b"abc")  # queued, not yet sent
        direct_writer(transport)(b"def")
        assert transport._tempDataBuffer == [b"abc", b"def"]
        assert await reader.done.addTimeout(WAIT, reactor) == b"abcdef"
    finally:
        transport.loseConnection()
        await port.stopListening()


def test_accepted_sockets_inherit_tcp_nodelay_from_the_listener() -> None:
    """Direct writes rely on it and no connection sets it again (service.bind_socket)."""
    listener = bind_socket("127.0.0.1", 0)
    client = socket.create_connection(listener.getsockname(), timeout=WAIT)
    try:
        listener.setblocking(True)
        listener.settimeout(WAIT)
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        client.close()
        listener.close()
