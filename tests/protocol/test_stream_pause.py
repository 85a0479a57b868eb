"""
Stream.pauseProducing keeps the reader registered until bytes are ready:
a pause that ends before the peer sends anything costs the reactor no
registration change, and one that meets bytes stops reading then, on
real loopback connections.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from tests.protocol.test_stream import Recorder, _tcp_pair, _turn
from wstunnel.net.stream import Stream


class CountingReactor:
    """The suite's reactor, with its reader registrations counted."""

    def __init__(self) -> None:
        self.changes: list[str] = []

    def addReader(self, reader: object) -> None:
        self.changes.append("add")
        reactor.addReader(reader)

    def removeReader(self, reader: object) -> None:
        self.changes.append("remove")
        reactor.removeReader(reader)

    def __getattr__(self, name: str) -> object:
        return getattr(reactor, name)


@pytest.fixture
def counted():
    ours, theirs = _tcp_pair()
    theirs.setblocking(False)
    counting = CountingReactor()
    near, far = Recorder(), Recorder()
    stream = Stream(ours, IPv4Address("TCP", *ours.getpeername()), counting)
    stream.start(near)
    peer = Stream(theirs, IPv4Address("TCP", *theirs.getpeername()), reactor)
    peer.start(far)
    yield stream, near, peer, counting
    for one in (stream, peer):
        if one.socket is not None:
            one.connectionLost(Failure(ConnectionDone()))


@pytest_twisted.ensureDeferred
async def test_a_pause_that_meets_no_bytes_changes_no_registration(counted) -> None:
    stream, near, peer, counting = counted
    assert counting.changes == ["add"]
    stream.pauseProducing()
    await _turn()
    stream.resumeProducing()
    assert counting.changes == ["add"]
    peer.direct_write(b"after")
    assert await near.arrived(5) == b"after"


@pytest_twisted.ensureDeferred
async def test_a_pause_that_meets_bytes_stops_reading_then_and_resuming_delivers_them_in_order(counted) -> None:
    stream, near, peer, counting = counted
    stream.pauseProducing()
    peer.direct_write(b"held ")
    for _ in range(100):
        if not stream._reading:
            break
        await _turn()
    assert counting.changes == ["add", "remove"] and near.data == b""
    peer.direct_write(b"back")
    await _turn()
    assert near.data == b""
    stream.resumeProducing()
    assert counting.changes == ["add", "remove", "add"]
    assert await near.arrived(9) == b"held back"
