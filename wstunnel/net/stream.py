"""
The TCP transport of every accepted and dialled connection.

Twisted's ``tcp.Connection`` queues every write and sends it on the next
turn of the reactor, registering for writability first and unregistering
after (two ``epoll_ctl`` and a loop turn per write), and carries the
attributes of a general-purpose file descriptor on every connection.
:class:`Stream` adds ``direct_write``, which sends at once when nothing is
queued and registers for writability only for what the kernel did not
take; it keeps its state in ``__slots__`` (memory per idle tunnel) and
reports a close with shared :class:`~twisted.python.failure.Failure`
instances, as Twisted's reactor does.  It keeps Twisted's observable
behaviour: ``write`` queued until the socket is writable, the 64 KiB bound
that pauses a streaming producer, a pull producer asked again on each
drain, ``loseConnection`` after the queue drains and delivered on a later
turn, half-close both ways, ``abortConnection`` as a reset on a later turn.

It is registered through the reactor's public ``IReactorFDSet``
(``addReader``/``addWriter``), which the epoll reactor of twistd and the
asyncio reactor of the tests both provide; the reactor calls
``doRead``/``doWrite``/``connectionLost`` on it.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IProducer,
    IProtocol,
    IPushProducer,
    IReadWriteDescriptor,
    ISystemHandle,
    ITCPTransport,
)
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["BUFFER_SIZE", "Stream", "tcp_address"]

# A streaming producer is paused once this much is queued (Twisted's bufferSize).
BUFFER_SIZE = 2**16
_READ_SIZE = 2**16
_SEND_LIMIT = 2**17  # the tail joins the head when less than this is left of it (Twisted's)

# Shared, as Twisted's reactor shares its own: no Failure is built per close.
_DONE = Failure(ConnectionDone())
_LOST = Failure(ConnectionLost())
_ABORTED = Failure(ConnectionAborted())
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)

_WRITE_OPEN, _WRITE_CLOSING, _WRITE_CLOSED = 0, 1, 2


def tcp_address(address: tuple) -> IPv4Address | IPv6Address:
    """Twisted's address value for a ``getsockname``/``accept`` tuple."""
    if len(address) == 4:
        return IPv6Address("TCP", *address)
    return IPv4Address("TCP", *address)


@implementer(ITCPTransport, ISystemHandle, IConsumer, IPushProducer, IReadWriteDescriptor)
class Stream:
    """
    One connected, non-blocking TCP socket under ``protocol``.  Unsent
    bytes wait as ``dataBuffer[offset:]`` followed by ``_tempDataBuffer``
    (``_tempDataLen`` bytes): Twisted's names and shape for its queue, so
    what inspects a transport's backlog reads either.  An empty tail is a
    shared tuple, not a list per connection.

    ``write`` queues and sends when the socket is writable, as Twisted's
    does: the upstream protocol writes a request head that way so that a
    body refused as it is read leaves the upstream untouched (the abort
    drops the queue).  ``direct_write`` is the fast one, used through
    :func:`wstunnel.net.fastwrite.direct_writer`: it sends at once when
    nothing is queued.
    """

    __slots__ = (
        "socket", "protocol", "reactor", "fileno", "connected", "disconnecting",
        "dataBuffer", "offset", "_tempDataBuffer", "_tempDataLen", "_peer", "_host", "_reading", "_held", "_writing",
        "_producer", "_streaming", "_paused", "_write_state", "_aborting", "__weakref__",
    )

    def __init__(
        self, sock: socket.socket, peer: IPv4Address | IPv6Address, reactor: Any,
        host: IPv4Address | IPv6Address | None = None,
    ) -> None:
        self.socket: socket.socket | None = sock
        self.protocol: IProtocol | None = None
        self.reactor = reactor
        self.fileno = sock.fileno
        self.connected = False
        self.disconnecting = False
        self._peer = peer
        self._host = host  # known to a listener bound to one address; else asked once
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataBuffer: list[bytes] | tuple[()] = ()
        self._tempDataLen = 0
        self._reading = False  # registered with the reactor for reading
        self._held = False  # paused: registered or not, nothing is read
        self._writing = False
        self._producer: IProducer | None = None
        self._streaming = False
        self._paused = False
        self._write_state = _WRITE_OPEN
        self._aborting = False

    def start(self, protocol: IProtocol) -> None:
        """Read, then hand the protocol its connection (the order Twisted's ``tcp.Server`` uses)."""
        self.protocol = protocol
        self.connected = True
        self._reading = True
        self.reactor.addReader(self)
        protocol.makeConnection(self)

    def logPrefix(self) -> str:
        return "Stream"

    # Reading.

    def doRead(self) -> None:
        if self._held:
            self._stop_reading()  # paused with bytes waiting: now the reader goes
            return
        try:
            data = self.socket.recv(_READ_SIZE)  # type: ignore[union-attr]
        except BlockingIOError:
            return
        except OSError:
            data = None
        if self.disconnecting:
            # Closing: what arrives is dropped, and an end or error waits
            # for the close under way (Twisted stops reading at loseConnection).
            if not data:
                self._stop_reading()
        elif data:
            self.protocol.dataReceived(data)  # type: ignore[union-attr]
        elif data is None:
            self.connectionLost(_LOST)
        else:
            self._read_ended()

    def _read_ended(self) -> None:
        """The peer shut its side: a half-closeable protocol hears it and may go on writing."""
        half = IHalfCloseableProtocol(self.protocol, None)
        if half is None:
            self.connectionLost(_DONE)
            return
        self._stop_reading()
        try:
            half.readConnectionLost()
        except BaseException:
            self.connectionLost(Failure())

    def pauseProducing(self) -> None:
        """
        The reader stays registered until something is ready to read: a
        pause that ends before the peer sends anything (the client while
        its upstream connects) costs no ``epoll_ctl``.
        """
        self._held = True

    def resumeProducing(self) -> None:
        self._held = False
        if self.connected and not self.disconnecting and not self._reading:
            self._reading = True
            self.reactor.addReader(self)

    def stopProducing(self) -> None:
        self.loseConnection()

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.reactor.removeReader(self)

    # Writing.

    def write(self, data: bytes) -> None:
        """Queued, sent when the socket is next writable (Twisted's write)."""
        if data and self.connected and not self._aborting and self._write_state != _WRITE_CLOSED:
            self._enqueue(data)
            self._start_writing()

    def direct_write(self, data: bytes) -> None:
        """Sent at once when nothing is queued; only what the kernel did not take waits."""
        if not data or not self.connected or self._aborting or self._write_state == _WRITE_CLOSED:
            return
        if self.dataBuffer or self._tempDataBuffer:
            self._enqueue(data)
            return
        try:
            sent = self.socket.send(data)  # type: ignore[union-attr]
        except OSError:
            sent = 0  # EAGAIN, or an error the writability wait meets and reports
        if sent < len(data):
            self.dataBuffer, self.offset = data, sent
            self._start_writing()
            self._maybe_pause()
        elif self._producer is not None and not self._streaming:
            self._start_writing()  # a drain asks the pull producer for more

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def _enqueue(self, data: bytes) -> None:
        if self._tempDataBuffer:
            self._tempDataBuffer.append(data)  # type: ignore[union-attr]
        else:
            self._tempDataBuffer = [data]
        self._tempDataLen += len(data)
        self._maybe_pause()

    def queued(self) -> int:
        """Bytes written and not yet taken by the kernel."""
        return len(self.dataBuffer) - self.offset + self._tempDataLen

    def _maybe_pause(self) -> None:
        if self._streaming and not self._paused and self._producer is not None and self.queued() > BUFFER_SIZE:
            self._paused = True
            self._producer.pauseProducing()  # type: ignore[attr-defined]

    def _start_writing(self) -> None:
        if not self._writing:
            self._writing = True
            self.reactor.addWriter(self)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self.reactor.removeWriter(self)

    def doWrite(self) -> None:
        head, offset = self.dataBuffer, self.offset
        if self._tempDataBuffer and len(head) - offset < _SEND_LIMIT:
            head = self.dataBuffer = b"".join([memoryview(head)[offset:], *self._tempDataBuffer])
            offset, self._tempDataBuffer, self._tempDataLen = 0, (), 0
        if head:
            try:
                sent = self.socket.send(memoryview(head)[offset:])  # type: ignore[union-attr]
            except BlockingIOError:
                self.offset = offset
                return
            except OSError:
                self.connectionLost(_LOST)
                return
            offset += sent
            if offset < len(head):
                self.offset = offset
                return
            self.dataBuffer, self.offset = b"", 0
            if self._tempDataBuffer:
                return  # the tail goes on the next writability
        self._stop_writing()
        self._drained()

    def _drained(self) -> None:
        """Nothing queued: the producer, a pending close or a pending half-close goes on (Twisted's order)."""
        producer = self._producer
        if producer is not None and (not self._streaming or self._paused):
            self._paused = False
            producer.resumeProducing()  # type: ignore[attr-defined]
        elif self.disconnecting:
            self.connectionLost(_DONE)
        elif self._write_state == _WRITE_CLOSING:
            self._shut_write()

    def _drained_later(self) -> None:
        if self.socket is not None and not self._aborting and not (self.dataBuffer or self._tempDataBuffer):
            self._drained()

    def _shut_write(self) -> None:
        self._write_state = _WRITE_CLOSED
        try:
            self.socket.shutdown(socket.SHUT_WR)  # type: ignore[union-attr]
        except OSError:
            pass
        half = IHalfCloseableProtocol(self.protocol, None)
        if half is not None:
            half.writeConnectionLost()

    # The consumer side.

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError(f"Cannot register producer {producer}, because producer {self._producer} was never unregistered.")
        if self.socket is None:
            producer.stopProducing()
            return
        self._producer, self._streaming, self._paused = producer, streaming, False
        if not streaming:
            producer.resumeProducing()  # type: ignore[attr-defined]

    def unregisterProducer(self) -> None:
        self._producer = None
        self._paused = False
        if self.connected and self.disconnecting and not (self.dataBuffer or self._tempDataBuffer):
            self.reactor.callLater(0, self._drained_later)

    # Closing.

    def loseConnection(self) -> None:
        """Close once the queue has drained, on a later turn of the reactor."""
        if not self.connected or self.disconnecting:
            return
        if self._write_state == _WRITE_CLOSED:
            self.connectionLost(_DONE)
            return
        self.disconnecting = True
        queued = self.dataBuffer or self._tempDataBuffer
        if queued or self._producer is not None:
            self._stop_reading()
        if not queued:
            self.reactor.callLater(0, self._drained_later)

    def loseWriteConnection(self) -> None:
        """Half-close: ``shutdown(SHUT_WR)`` once the queue has drained."""
        if self._write_state != _WRITE_OPEN:
            return
        self._write_state = _WRITE_CLOSING
        if not (self.dataBuffer or self._tempDataBuffer):
            self.reactor.callLater(0, self._drained_later)

    def abortConnection(self) -> None:
        """A reset, reported on a later turn with ConnectionAborted, as Twisted does."""
        if self.socket is None or self._aborting:
            return
        self._aborting = True
        self._stop_reading()
        self._stop_writing()
        self.reactor.callLater(0, self.connectionLost, _ABORTED)

    def connectionLost(self, reason: Failure) -> None:
        """The one way out, whoever calls it (this class or the reactor): the protocol hears it once."""
        sock = self.socket
        if sock is None:
            return
        self.socket = None
        self.connected = False
        self._stop_reading()
        self._stop_writing()
        self.dataBuffer, self._tempDataBuffer, self._tempDataLen = b"", (), 0
        producer, self._producer = self._producer, None
        if reason is _ABORTED:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            except OSError:
                pass
        sock.close()
        protocol, self.protocol = self.protocol, None
        try:
            if producer is not None:
                producer.stopProducing()
        finally:
            protocol.connectionLost(reason)  # type: ignore[union-attr]

    # Addresses and options.

    def getPeer(self) -> IPv4Address | IPv6Address:
        return self._peer

    def getHost(self) -> IPv4Address | IPv6Address:
        if self._host is None:
            self._host = tcp_address(self.socket.getsockname())  # type: ignore[union-attr]
        return self._host

    def getHandle(self) -> socket.socket:
        return self.socket  # type: ignore[return-value]

    def getTcpNoDelay(self) -> bool:
        return bool(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))  # type: ignore[union-attr]

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(enabled))  # type: ignore[union-attr]

    def getTcpKeepAlive(self) -> bool:
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))  # type: ignore[union-attr]

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(enabled))  # type: ignore[union-attr]

    def idle(self) -> bool:
        """Nothing queued and open for writing: bytes sent now by another path keep their order."""
        return not (self.dataBuffer or self._tempDataBuffer) and self.connected and not self.disconnecting and self._write_state == _WRITE_OPEN
