"""
The listening side: accepts on a socket the service has bound and hands
each connection to a :class:`~wstunnel.net.stream.Stream`.

It replaces ``reactor.adoptStreamPort``, whose port duplicates the
descriptor and makes Twisted's ``tcp.Server`` per connection.  Accepting
follows Twisted's rhythm: as many as the last readiness brought, plus some
when that bound was reached, so a quiet listener makes one ``accept`` per
connection and no failing one.  When the process is out of descriptors
(or memory) accepting pauses briefly, as nginx does, rather than spinning
on a listener the kernel keeps reporting ready.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wstunnel.net.stream import Stream, tcp_address

__all__ = ["Listener", "listen_on"]

_RETRY = (errno.EPERM, errno.ECONNABORTED, errno.EPROTO)
_STARVED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_STARVED_PAUSE = 0.5  # seconds, nginx's pause of accept after EMFILE
_ACCEPT_STEP = 20


@implementer(IListeningPort, IReadDescriptor)
class Listener:
    """One listening socket; ``socket`` stays reachable for retuning its options."""

    log = Logger()

    def __init__(self, sock: socket.socket, factory: IProtocolFactory, reactor: Any) -> None:
        self.socket = sock
        self.fileno = sock.fileno
        self.factory = factory
        self.reactor = reactor
        self.connected = False
        self._accepts = 100
        self._ipv6 = sock.family == socket.AF_INET6
        # Bound to one address, every accepted socket's own address is the
        # listener's: no getsockname per connection.
        local = self.getHost()
        self._host = None if local.host in ("0.0.0.0", "::") else local

    def logPrefix(self) -> str:
        return "Listener"

    def startListening(self) -> None:
        self.socket.setblocking(False)
        self.factory.doStart()
        self.connected = True
        self.reactor.addReader(self)

    def stopListening(self) -> Deferred[None]:
        """Close at once; the Deferred is IListeningPort's and has already fired."""
        if self.connected:
            self.connected = False
            self.reactor.removeReader(self)
            self.socket.close()
            self.factory.doStop()
        return succeed(None)

    loseConnection = stopListening

    def connectionLost(self, reason: Failure) -> None:
        self.stopListening()

    def getHost(self) -> Any:
        return tcp_address(self.socket.getsockname())

    def doRead(self) -> None:
        accepted = 0
        try:
            accepted = self._accept_some()
        except BaseException:
            self.log.failure("accepting a connection")
        self._accepts = self._accepts + _ACCEPT_STEP if accepted >= self._accepts else max(1, accepted)

    def _accept_some(self) -> int:
        """Up to ``_accepts`` connections; how many were taken from the backlog."""
        accept = self.socket.accept
        for count in range(self._accepts):
            if not self.connected:
                return count
            try:
                sock, address = accept()
            except BlockingIOError:
                return count
            except OSError as e:
                if e.errno in _RETRY:
                    continue
                if e.errno in _STARVED:
                    self._starved(e.errno)
                    return count
                raise
            self._serve(sock, address)
        return self._accepts

    def _serve(self, sock: socket.socket, address: tuple) -> None:
        sock.setblocking(False)  # accept4 gives it only close-on-exec
        if self._ipv6:
            host, _ = socket.getnameinfo(address, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
            address = (host, *address[1:])
        peer = tcp_address(address)
        protocol = self.factory.buildProtocol(peer)
        if protocol is None:
            sock.close()
            return
        Stream(sock, peer, self.reactor, self._host).start(protocol)

    def _starved(self, code: int) -> None:
        self.log.info("Could not accept new connection ({acceptError})", acceptError=errno.errorcode[code])
        self.reactor.removeReader(self)
        self.reactor.callLater(_STARVED_PAUSE, self._resume)

    def _resume(self) -> None:
        if self.connected:
            self.reactor.addReader(self)


def listen_on(sock: socket.socket, factory: IProtocolFactory, reactor: Any) -> Listener:
    """Accept on ``sock`` (bound and listening); the listener owns it from now on."""
    port = Listener(sock, factory, reactor)
    port.startListening()
    return port
