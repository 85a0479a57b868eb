"""
wstunnel.net.stream.Stream on real loopback TCP connections and the
reactor the suite runs on: direct sends, queueing order, producers,
closes, half-closes both ways, abort and reset.
"""

from __future__ import annotations

import socket
import struct

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol, IPullProducer, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from tests.support import WAIT
from wstunnel.net.stream import BUFFER_SIZE, Stream


class Recorder(Protocol):
    """Keeps what arrives; ``arrived(n)`` fires once ``n`` bytes are in, ``lost`` at the close."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.reasons: list[Failure] = []
        self.lost: defer.Deferred = defer.Deferred()
        self._want: tuple[int, defer.Deferred] | None = None

    def arrived(self, size: int) -> defer.Deferred:
        waiting: defer.Deferred = defer.Deferred()
        self._want = (size, waiting)
        self._check()
        return waiting.addTimeout(WAIT, reactor)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        self._check()

    def _check(self) -> None:
        if self._want is not None and len(self.data) >= self._want[0]:
            waiting, self._want = self._want[1], None
            waiting.callback(bytes(self.data))

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.reasons.append(reason)
        if not self.lost.called:
            self.lost.callback(None)


@implementer(IHalfCloseableProtocol)
class HalfRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.read_ended: defer.Deferred = defer.Deferred()
        self.write_ended: defer.Deferred = defer.Deferred()

    def readConnectionLost(self) -> None:
        self.read_ended.callback(None)

    def writeConnectionLost(self) -> None:
        self.write_ended.callback(None)


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname(), timeout=WAIT)
        ours, _ = listener.accept()
    ours.setblocking(False)
    return ours, peer


def _stream(sock: socket.socket, protocol: Protocol) -> Stream:
    stream = Stream(sock, IPv4Address("TCP", *sock.getpeername()), reactor)
    stream.start(protocol)
    return stream


@pytest.fixture
def pair():
    """Two streams over one loopback connection, closed at the end whatever happened."""
    ours, theirs = _tcp_pair()
    theirs.setblocking(False)
    near, far = Recorder(), Recorder()
    streams = (_stream(ours, near), _stream(theirs, far))
    yield streams[0], near, streams[1], far
    for stream in streams:
        if stream.socket is not None:
            stream.connectionLost(Failure(ConnectionDone()))


# More than the kernel holds for a connection whose reader has stopped
# (loopback socket buffers autotune to a few MiB each way).
_BIG = 24 << 20


@pytest_twisted.ensureDeferred
async def test_a_direct_write_with_nothing_queued_goes_out_at_once(pair) -> None:
    stream, _, _, far = pair
    stream.direct_write(b"hello")
    assert stream.dataBuffer == b"" and stream.queued() == 0 and stream.idle()
    assert await far.arrived(5) == b"hello"


@pytest_twisted.ensureDeferred
async def test_a_write_waits_for_writability_and_a_direct_write_goes_behind_it(pair) -> None:
    stream, _, _, far = pair
    stream.write(b"head ")
    stream.direct_write(b"body")
    assert stream._tempDataBuffer == [b"head ", b"body"] and not stream.idle()
    assert await far.arrived(9) == b"head body"


@pytest_twisted.ensureDeferred
async def test_an_abort_drops_what_write_queued(pair) -> None:
    stream, near, _, far = pair
    stream.write(b"never sent")
    stream.abortConnection()
    await near.lost.addTimeout(WAIT, reactor)
    await far.lost.addTimeout(WAIT, reactor)
    assert far.data == b"" and far.reasons[0].check(ConnectionLost)


@pytest_twisted.ensureDeferred
async def test_what_the_kernel_does_not_take_is_queued_and_later_writes_keep_their_order(pair) -> None:
    stream, _, peer, far = pair
    peer.pauseProducing()
    block = bytes(range(256)) * (_BIG // 256)
    stream.direct_write(block)
    assert stream.dataBuffer, "a partial send leaves the rest queued"
    stream.writeSequence([b"and ", b"then"])
    assert stream._tempDataBuffer == [b"and then"] and not stream.idle()
    peer.resumeProducing()
    assert await far.arrived(len(block) + 8) == block + b"and then"
    await _turn()
    assert stream.queued() == 0 and stream.dataBuffer == b""


@implementer(IPushProducer)
class Pushing:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


@pytest_twisted.ensureDeferred
async def test_a_streaming_producer_is_paused_past_the_bound_and_resumed_when_drained(pair) -> None:
    stream, _, peer, far = pair
    peer.pauseProducing()
    producer = Pushing()
    stream.registerProducer(producer, True)
    total = 0
    for _ in range(_BIG // 16384):
        stream.direct_write(b"x" * 16384)
        total += 16384
        if stream.queued() > BUFFER_SIZE:
            break
        assert producer.events == []
    assert producer.events == ["pause"]
    peer.resumeProducing()
    await far.arrived(total)
    await _turn()
    assert producer.events == ["pause", "resume"]
    stream.unregisterProducer()
    stream.loseConnection()
    await stream_lost(stream)
    assert producer.events == ["pause", "resume"], "an unregistered producer is not stopped"


@implementer(IPullProducer)
class Pulling:
    def __init__(self, stream: Stream, chunks: int) -> None:
        self.stream, self.left, self.asked = stream, chunks, 0

    def resumeProducing(self) -> None:
        self.asked += 1
        if self.left:
            self.left -= 1
            self.stream.direct_write(b"%d," % self.left)
        else:
            self.stream.unregisterProducer()
            self.stream.loseConnection()

    def stopProducing(self) -> None:
        self.left = 0


@pytest_twisted.ensureDeferred
async def test_a_pull_producer_is_asked_once_per_drain_until_it_unregisters(pair) -> None:
    stream, near, _, far = pair
    producer = Pulling(stream, 3)
    stream.registerProducer(producer, False)
    assert producer.asked == 1, "asked at once when it registers"
    await near.lost.addTimeout(WAIT, reactor)
    reason = near.reasons[0]
    assert reason.check(ConnectionDone) and producer.asked == 4
    assert await far.arrived(6) == b"2,1,0,"


@pytest_twisted.ensureDeferred
async def test_lose_connection_waits_for_the_queue_and_reports_a_clean_close_once(pair) -> None:
    stream, near, peer, far = pair
    peer.pauseProducing()
    block = b"y" * _BIG
    stream.write(block)
    stream.loseConnection()
    assert stream.disconnecting and stream.connected and near.reasons == []
    stream.loseConnection()
    peer.resumeProducing()
    await near.lost.addTimeout(WAIT, reactor)
    reason = near.reasons[0]
    assert reason.check(ConnectionDone) and not stream.connected
    await far.lost.addTimeout(WAIT, reactor)
    assert far.data == block and far.reasons[0].check(ConnectionDone)
    stream.abortConnection()
    stream.loseConnection()
    await _turn()
    assert len(near.reasons) == 1, "connectionLost is delivered once"


@pytest_twisted.ensureDeferred
async def test_lose_connection_is_reported_on_a_later_turn_not_inside_the_call(pair) -> None:
    stream, near, _, _ = pair
    stream.loseConnection()
    assert near.reasons == []
    await near.lost.addTimeout(WAIT, reactor)
    assert stream.socket is None and stream.protocol is None


@pytest_twisted.ensureDeferred
async def test_a_write_half_close_shuts_down_after_the_queue_and_reading_goes_on() -> None:
    ours, theirs = _tcp_pair()
    theirs.setblocking(False)
    near, far = HalfRecorder(), HalfRecorder()
    stream, peer = _stream(ours, near), _stream(theirs, far)
    stream.write(b"last words")
    stream.loseWriteConnection()
    await near.write_ended.addTimeout(WAIT, reactor)
    await far.read_ended.addTimeout(WAIT, reactor)
    assert far.data == b"last words" and near.reasons == [] and far.reasons == []
    stream.write(b"dropped")  # nothing goes out after the shutdown
    peer.write(b"reply")
    assert await near.arrived(5) == b"reply"
    peer.loseConnection()
    await near.read_ended.addTimeout(WAIT, reactor)
    stream.loseConnection()
    assert near.reasons[0].check(ConnectionDone), "both halves shut: the close is at once"
    await far.lost.addTimeout(WAIT, reactor)


@pytest_twisted.ensureDeferred
async def test_a_peer_half_close_ends_the_connection_for_a_protocol_that_cannot_half_close(pair) -> None:
    stream, near, peer, _ = pair
    peer.loseWriteConnection()
    await near.lost.addTimeout(WAIT, reactor)
    reason = near.reasons[0]
    assert reason.check(ConnectionDone)


@pytest_twisted.ensureDeferred
async def test_abort_resets_the_connection_and_reports_connection_aborted_later() -> None:
    ours, theirs = _tcp_pair()
    near = Recorder()
    stream = _stream(ours, near)
    stream.abortConnection()
    assert near.reasons == [] and stream.connected
    await near.lost.addTimeout(WAIT, reactor)
    reason = near.reasons[0]
    assert reason.check(ConnectionAborted)
    with theirs:
        with pytest.raises(ConnectionResetError):
            theirs.recv(16)


@pytest_twisted.ensureDeferred
async def test_a_reset_by_the_peer_is_connection_lost() -> None:
    ours, theirs = _tcp_pair()
    near = Recorder()
    _stream(ours, near)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    theirs.close()
    await near.lost.addTimeout(WAIT, reactor)
    reason = near.reasons[0]
    assert reason.check(ConnectionLost) and len(near.reasons) == 1


@pytest_twisted.ensureDeferred
async def test_a_paused_stream_reads_nothing_until_resumed(pair) -> None:
    stream, near, peer, _ = pair
    stream.pauseProducing()
    peer.write(b"held")
    await _turn()
    await _turn()
    assert near.data == b""
    stream.resumeProducing()
    assert await near.arrived(4) == b"held"


def test_addresses_options_and_handle() -> None:
    ours, theirs = _tcp_pair()
    with theirs:
        stream = _stream(ours, Recorder())
        try:
            assert stream.getPeer() == IPv4Address("TCP", *theirs.getsockname())
            assert stream.getHost() == IPv4Address("TCP", *theirs.getpeername())
            assert stream.getHandle() is ours
            stream.setTcpNoDelay(True)
            stream.setTcpKeepAlive(True)
            assert stream.getTcpNoDelay() and stream.getTcpKeepAlive()
            stream.setTcpNoDelay(False)
            assert not stream.getTcpNoDelay()
        finally:
            stream.connectionLost(Failure(ConnectionDone()))


def test_a_stream_has_no_instance_dictionary() -> None:
    """Memory per idle tunnel: every field is a slot."""
    ours, theirs = _tcp_pair()
    with theirs:
        stream = _stream(ours, Recorder())
        try:
            assert not hasattr(stream, "__dict__")
        finally:
            stream.connectionLost(Failure(ConnectionDone()))


async def stream_lost(stream: Stream) -> None:
    for _ in range(100):
        if stream.socket is None:
            return
        await _turn()
    raise AssertionError("the stream did not close")


def _turn() -> defer.Deferred:
    """One pass of the reactor: timers due now and ready descriptors."""
    turn: defer.Deferred = defer.Deferred()
    reactor.callLater(0, turn.callback, None)
    return turn
