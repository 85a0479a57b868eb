"""
wstunnel.net.listen.Listener on a real loopback listening socket: each
accepted connection gets a Stream and a protocol built with its peer's
address; stopListening closes the socket.
"""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock

from tests.support import WAIT, aio, read_exactly
from wstunnel.net.listen import Listener, listen_on
from wstunnel.net.stream import Stream


class Greeter(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hi")
        self.factory.made.append(self)  # type: ignore[attr-defined]
        waiting, self.factory.waiting = self.factory.waiting, None  # type: ignore[attr-defined]
        if waiting is not None:
            waiting.callback(self)


class Greeters(Factory):
    protocol = Greeter

    def __init__(self) -> None:
        self.made: list[Greeter] = []
        self.addresses: list[object] = []
        self.waiting: defer.Deferred | None = None
        self.refuse = False
        self.started = self.stopped = 0

    def buildProtocol(self, addr: object) -> Protocol | None:
        self.addresses.append(addr)
        return None if self.refuse else super().buildProtocol(addr)

    def startFactory(self) -> None:
        self.started += 1

    def stopFactory(self) -> None:
        self.stopped += 1

    def next(self) -> defer.Deferred:
        self.waiting = defer.Deferred()
        return self.waiting.addTimeout(WAIT, reactor)


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


@pytest_twisted.ensureDeferred
async def test_an_accepted_connection_gets_a_stream_and_a_protocol_built_with_its_peer() -> None:
    factory = Greeters()
    port = listen_on(_listening(), factory, reactor)
    try:
        assert factory.started == 1
        host = port.getHost()
        assert isinstance(host, IPv4Address) and host.host == "127.0.0.1"
        made = factory.next()
        reader, writer = await aio(asyncio.open_connection(host.host, host.port))
        try:
            protocol = await made
            assert isinstance(protocol.transport, Stream)
            assert factory.addresses == [IPv4Address("TCP", *writer.get_extra_info("sockname"))]
            assert protocol.transport.getPeer() == factory.addresses[0]
            assert protocol.transport.getHost() == host == IPv4Address("TCP", *writer.get_extra_info("peername"))
            assert await aio(read_exactly(reader, 2)) == b"hi"
            protocol.transport.loseConnection()
            assert await aio(reader.read()) == b""
        finally:
            writer.close()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_factory_that_builds_nothing_has_the_connection_closed() -> None:
    factory = Greeters()
    factory.refuse = True
    port = listen_on(_listening(), factory, reactor)
    try:
        reader, writer = await aio(asyncio.open_connection("127.0.0.1", port.getHost().port))
        try:
            assert await aio(reader.read()) == b"", "closed without a word"
        finally:
            writer.close()
        assert len(factory.addresses) == 1 and factory.made == []
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_several_waiting_connections_are_all_accepted() -> None:
    factory = Greeters()
    sock = _listening()
    host, number = sock.getsockname()
    clients = [await aio(asyncio.open_connection(host, number)) for _ in range(5)]
    port = listen_on(sock, factory, reactor)
    try:
        for reader, _ in clients:
            assert await aio(read_exactly(reader, 2)) == b"hi"
        assert len(factory.made) == 5
    finally:
        for _, writer in clients:
            writer.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_stop_listening_closes_the_socket_and_stops_the_factory_once() -> None:
    factory = Greeters()
    sock = _listening()
    address = sock.getsockname()
    port = listen_on(sock, factory, reactor)
    stopped = port.stopListening()
    assert stopped.called and sock.fileno() == -1 and factory.stopped == 1
    await stopped
    await port.stopListening()
    assert factory.stopped == 1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=WAIT).close()


class _Starved:
    """A listening socket whose accept fails as a process out of descriptors sees it."""

    family = socket.AF_INET

    def __init__(self) -> None:
        self.accepts = 0

    def fileno(self) -> int:
        return 99

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 8080)

    def setblocking(self, flag: bool) -> None:
        pass

    def accept(self) -> tuple[socket.socket, tuple]:
        self.accepts += 1
        raise OSError(errno.EMFILE, "Too many open files")


def test_out_of_descriptors_pauses_accepting_instead_of_spinning() -> None:
    clock = MemoryReactorClock()
    sock = _Starved()
    port = listen_on(sock, Greeters(), clock)  # type: ignore[arg-type]
    assert port in clock.getReaders()
    port.doRead()
    assert sock.accepts == 1 and port not in clock.getReaders()
    clock.advance(0.5)
    assert port in clock.getReaders(), "accepting resumes after nginx's half second"



def test_only_a_wildcard_listener_leaves_the_local_address_to_each_socket() -> None:
    """Bound to one address, a connection's own address is known without a getsockname."""
    wildcard = _Starved()
    wildcard.getsockname = lambda: ("0.0.0.0", 8080)  # type: ignore[method-assign]
    assert Listener(wildcard, Greeters(), MemoryReactorClock())._host is None  # type: ignore[arg-type]
    assert Listener(_Starved(), Greeters(), MemoryReactorClock())._host == IPv4Address("TCP", "127.0.0.1", 8080)  # type: ignore[arg-type]
