"""
The upstream side: one connection to one peer for one request.

The protocol writes the rewritten request with an ``h11`` client connection,
parses the answer with it, and reports every event to its
:class:`UpstreamListener` (the exchange).  After a 101 it stops parsing and
hands its data straight to the tunnel.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

import h11
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from .headers import UpstreamRequest
from .tunnel import Tunnel

__all__ = ["UpstreamFactory", "UpstreamListener", "UpstreamProtocol", "RESPONSE_HEAD_LIMIT"]

# The largest response head we accept from an upstream.  nginx's
# proxy_buffer_size default is one page (4k/8k) and it answers 502 past it;
# 64 KiB leaves room for large cookies and CSP headers.
RESPONSE_HEAD_LIMIT = 64 * 1024


class UpstreamListener(TypingProtocol):
    """What the upstream connection reports to (the exchange)."""

    def upstream_connected(self, upstream: "UpstreamProtocol") -> None: ...
    def upstream_connect_failed(self, reason: Failure) -> None: ...
    def upstream_informational(self, event: h11.InformationalResponse) -> None: ...
    def upstream_switch(self, event: h11.InformationalResponse, early: bytes) -> None: ...
    def upstream_head(self, event: h11.Response) -> None: ...
    def upstream_data(self, data: bytes) -> None: ...
    def upstream_end(self) -> None: ...
    def upstream_invalid(self, detail: str) -> None: ...
    def upstream_lost(self, reason: Failure) -> None: ...


@implementer(IHalfCloseableProtocol)
class UpstreamProtocol(Protocol):
    """
    States, in order: connected and sending (``_parsing`` True), then either
    the response has ended (``_done``) or the tunnel has taken over
    (``dataReceived`` rebound to the tunnel).  ``tunnel_eof``/``tunnel_lost``
    are set by the exchange when the tunnel starts.
    """

    def __init__(self, listener: UpstreamListener) -> None:
        self._listener = listener
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=RESPONSE_HEAD_LIMIT)
        self._done = False
        self._eof = False
        self._tunnel: Tunnel | None = None
        self.bytes_received = 0
        self.bytes_sent = 0  # before a tunnel; the tunnel counts its own

    def connectionMade(self) -> None:
        self._listener.upstream_connected(self)

    # Sending the request.

    def send_head(self, request: UpstreamRequest) -> None:
        if request.http_version == b"1.1":
            event = h11.Request(method=request.method, target=request.target, headers=request.headers)
            self._write(self._h11.send(event))
            return
        # h11 only writes HTTP/1.1 requests.  For proxy_http_version 1.0 we
        # write the head ourselves (the values were validated when they
        # were rendered) and still pass an equivalent event through h11 so
        # its state machine parses the answer to this request.
        has_host = any(name.lower() == b"host" for name, _ in request.headers)
        headers = request.headers if has_host else (*request.headers, (b"Host", b"-"))
        self._h11.send(h11.Request(method=request.method, target=request.target, headers=headers))
        lines = [request.method + b" " + request.target + b" HTTP/1.0"]
        lines.extend(name + b": " + value for name, value in request.headers)
        self._write(b"\r\n".join(lines) + b"\r\n\r\n")

    def send_body(self, data: bytes) -> None:
        self._write(self._h11.send(h11.Data(data=data)))

    def end_body(self) -> None:
        self._write(self._h11.send(h11.EndOfMessage()))

    def _write(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        self.transport.write(data)

    # Receiving the answer.

    def dataReceived(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self._h11.receive_data(data)
        self._pump()

    def _pump(self) -> None:
        listener = self._listener
        while not self._done:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as e:
                self._done = True
                if self._eof:
                    # A head or body cut short: a connection error, not a bad answer.
                    listener.upstream_lost(Failure(ConnectionDone(str(e))))
                else:
                    listener.upstream_invalid(str(e))
                return
            kind = type(event)
            if kind is h11.Data:
                listener.upstream_data(event.data)
            elif kind is h11.Response:
                listener.upstream_head(event)
            elif kind is h11.EndOfMessage:
                self._done = True
                listener.upstream_end()
            elif kind is h11.InformationalResponse:
                if event.status_code == 101:
                    self._done = True
                    listener.upstream_switch(event, self._h11.trailing_data[0])
                else:
                    listener.upstream_informational(event)
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return
            else:
                # ConnectionClosed before the response ended.
                self._done = True
                listener.upstream_lost(Failure(ConnectionDone("no response")))

    def become_tunnel(self, tunnel: Tunnel) -> None:
        """From now on every byte goes straight to the tunnel, unparsed."""
        self._tunnel = tunnel
        self.dataReceived = tunnel.from_upstream  # type: ignore[method-assign]

    def readConnectionLost(self) -> None:
        if self._tunnel is not None:
            self._tunnel.upstream_eof()
            return
        if not self._done:
            self._eof = True
            self._h11.receive_data(b"")
            self._pump()
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Our write shutdown completed; nothing to do before the tunnel."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._tunnel is not None:
            self._tunnel.upstream_lost()
        elif not self._done:
            self._done = True
            self._listener.upstream_lost(reason)

    def stop(self) -> None:
        """Stop reporting: the exchange no longer wants this connection."""
        self._done = True
        self.transport.abortConnection()


class UpstreamFactory(ClientFactory):
    """Connects one :class:`UpstreamProtocol` and reports a failed connect."""

    noisy = False

    def __init__(self, listener: UpstreamListener) -> None:
        self._listener = listener

    def buildProtocol(self, addr: object) -> UpstreamProtocol:
        return UpstreamProtocol(self._listener)

    def clientConnectionFailed(self, connector: object, reason: Failure) -> None:
        self._listener.upstream_connect_failed(reason)
