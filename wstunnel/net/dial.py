"""
Outgoing TCP connections to upstream peers, on a :class:`~wstunnel.net.stream.Stream`.

Twisted's ``connectTCP`` makes a ``Connector`` and a ``tcp.Client`` per
attempt, connects on a later turn of the reactor, and registers the socket
for reading and writing while connecting (then unregisters both and
registers it again for reading).  :class:`Dial` connects at once on a
non-blocking socket, waits for writability only, reads ``SO_ERROR``, and
keeps one timer for the connect timeout, cancelled on success.  Failures
carry the exception types Twisted's connector gives (``getConnectError``
of the errno, ``TimeoutError`` for the timeout, ``UserError`` for a
cancelled attempt), which the error log and the 502/504 choice read, and
are reported on a later turn, never from inside the call that dialled.

The upstream factories do no work in ``doStart``/``doStop``/
``startedConnecting``/``clientConnectionLost``, so only
``buildProtocol`` and ``clientConnectionFailed`` are called.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from twisted.internet.error import ConnectError, TimeoutError, UserError, getConnectError
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IWriteDescriptor
from twisted.internet.protocol import ClientFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from wstunnel.net.stream import Stream, tcp_address
from wstunnel.net.throttle import cancel_timer

__all__ = ["Dial", "dial"]

_UNDER_WAY = (0, errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK)


@implementer(IWriteDescriptor)
class Dial:
    """One attempt; ``disconnect()`` stops it, or closes the connection it made."""

    __slots__ = ("_sock", "_address", "_factory", "_reactor", "_timer", "_stream", "fileno")

    def __init__(self, sock: socket.socket, address: tuple, factory: ClientFactory, reactor: Any) -> None:
        self._sock: socket.socket | None = sock
        self._address = address
        self._factory = factory
        self._reactor = reactor
        self._timer: IDelayedCall | None = None
        self._stream: Stream | None = None
        self.fileno = sock.fileno

    def logPrefix(self) -> str:
        return "Dial"

    def _begin(self, clock: IReactorTime, timeout: float | None) -> None:
        code = self._sock.connect_ex(self._address)  # type: ignore[union-attr]
        if code not in _UNDER_WAY:
            clock.callLater(0, self._fail, getConnectError((code, os.strerror(code))))
            return
        self._reactor.addWriter(self)
        if timeout is not None:
            self._timer = clock.callLater(timeout, self._fail, TimeoutError())

    def doWrite(self) -> None:
        """Writable: connected, or failed as ``SO_ERROR`` says."""
        sock = self._sock
        if sock is None:
            return
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._fail(getConnectError((code, os.strerror(code))))
            return
        self._connected(sock)

    def connectionLost(self, reason: Failure) -> None:
        """The reactor saw a hang-up or error before writability: ``SO_ERROR`` has the cause."""
        sock = self._sock
        if sock is None:
            return
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._fail(getConnectError((code, os.strerror(code))) if code else ConnectError(string=str(reason.value)))

    def _connected(self, sock: socket.socket) -> None:
        self._end_attempt()
        peer = tcp_address(self._address)
        protocol = self._factory.buildProtocol(peer)
        stream = self._stream = Stream(sock, peer, self._reactor)
        stream.start(protocol)

    def _fail(self, error: Exception) -> None:
        sock = self._sock
        if sock is None:
            return
        self._end_attempt()
        sock.close()
        self._factory.clientConnectionFailed(self, Failure(error))

    def _end_attempt(self) -> None:
        self._reactor.removeWriter(self)
        self._sock = None
        timer, self._timer = self._timer, None
        cancel_timer(timer)

    def disconnect(self) -> None:
        if self._sock is not None:
            self._fail(UserError())
        elif self._stream is not None:
            self._stream.loseConnection()

    def stopConnecting(self) -> None:
        if self._sock is not None:
            self._fail(UserError())

    def getDestination(self) -> Any:
        return tcp_address(self._address)


def dial(
    reactor: Any, clock: IReactorTime, host: str, port: int, factory: ClientFactory, timeout: float | None
) -> Dial:
    """Connect to ``host`` (an IP address) and ``port``; the factory hears the outcome."""
    ipv6 = ":" in host
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    attempt = Dial(sock, (host, port, 0, 0) if ipv6 else (host, port), factory, reactor)
    attempt._begin(clock, timeout)
    return attempt
