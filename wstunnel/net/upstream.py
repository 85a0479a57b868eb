"""
The upstream side: one connection to one peer, one request at a time.

The protocol writes the rewritten request framed by
:class:`~wstunnel.wire.upstream.RequestWriter` (a fresh one per request, so
a kept-alive connection starts clean), has :mod:`wstunnel.wire.heads` check and
parse every response head, reads the body with the reader of
:mod:`wstunnel.wire.bodies` its head calls for, and reports all of it to its
:class:`UpstreamListener` (the exchange).  After a 101 it stops parsing
and hands its data straight to the tunnel.  Between requests it may rest
in an :class:`~wstunnel.net.pool.IdlePool`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol as TypingProtocol

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IProtocolFactory,
    IReactorTCP,
    IReactorTime,
    IReactorUNIX,
)
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from wstunnel.wire.bodies import BodyError
from wstunnel.wire.errors import RequestError
from wstunnel.net.dial import dial
from wstunnel.net.fastwrite import direct_writer
from wstunnel.wire.heads import HeadGate, HeadLimits, check_response_head
from wstunnel.config.model import Peer
from wstunnel.wire.response import ResponseHead
from wstunnel.net.tunnel import Tunnel
from wstunnel.wire.upstream import BodyReader, RequestWriter, UpstreamRequest, keeps_alive, response_body

__all__ = [
    "Connect",
    "Connecting",
    "IdleSlot",
    "PeerConnector",
    "UpstreamFactory",
    "UpstreamListener",
    "UpstreamProtocol",
    "UpstreamTLSError",
]

# A chunk-size line, or a chunked body's trailer section, may be as long as
# proxy_buffer_size or this, whichever is larger (h11's default bound).
_CHUNK_LINE_LIMIT = 16 * 1024


@lru_cache(maxsize=None)
def _answer_limits(head_limit: int) -> HeadLimits:
    """The gate's limits for an answer under proxy_buffer_size: one value per size, not one per request."""
    return HeadLimits(line=head_limit, total=head_limit, count=None)


class UpstreamListener(TypingProtocol):
    """What the upstream connection reports to (the exchange)."""

    def upstream_connected(self, upstream: "UpstreamProtocol") -> None: ...
    def upstream_connect_failed(self, reason: Failure) -> None: ...
    def upstream_informational(self, head: ResponseHead) -> None: ...
    def upstream_switch(self, head: ResponseHead, early: bytes) -> None: ...
    def upstream_head(self, head: ResponseHead) -> None: ...
    def upstream_data(self, data: bytes) -> None: ...
    def upstream_end(self) -> None: ...
    def upstream_invalid(self, detail: str) -> None: ...
    def upstream_lost(self, reason: Failure) -> None: ...


class IdleSlot(TypingProtocol):
    """Where an idle connection rests (the pool); told when it must leave."""

    def drop(self, upstream: "UpstreamProtocol") -> None: ...


@implementer(IHalfCloseableProtocol)
class UpstreamProtocol(Protocol):
    """
    Per request: sending (``_request``), then reading heads through the
    gate (``_gate`` set), then the body (``_body`` set), until the response
    has ended (``_done``) or the tunnel has taken over (``dataReceived``
    rebound to the tunnel).  While parked in a pool ``_idle`` is set and
    any byte or close from the upstream retires the connection.
    """

    def __init__(self, listener: UpstreamListener) -> None:
        self._listener = listener
        self._request: RequestWriter | None = None
        self._gate: HeadGate | None = None
        self._body: BodyReader | None = None
        self._done = False
        self._answered = False  # the final answer ended by its framing
        self._keep_alive = False  # and its head lets the connection live on
        self._extra = 0  # bytes that followed the answer
        self._informational = 0  # bytes of this answer's 1xx heads, within proxy_buffer_size
        self._tunnel: Tunnel | None = None
        self._idle: IdleSlot | None = None
        self.peer: Peer | None = None
        self.bytes_received = 0
        self.response_bytes = 0  # bytes of the current request's answer
        self.request_bytes = 0  # bytes of the current request written (before a tunnel)
        self.requests = 0
        self.reused = False

    def connectionMade(self) -> None:
        # Request heads and bodies go out at once (fastwrite), so Nagle must
        # not hold a body behind its head; set once per connection, which
        # a tunnel then keeps.
        set_nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if set_nodelay is not None:
            set_nodelay(True)
        self.direct_write = direct_writer(self.transport)  # the tunnel writes with it too
        self._listener.upstream_connected(self)

    # Keep-alive.

    def park(self, slot: IdleSlot) -> None:
        """Rest between requests; the transport keeps reading so a close is seen."""
        self._idle = slot
        self._done = True
        self.transport.resumeProducing()

    def reuse(self, listener: UpstreamListener) -> None:
        self._idle = None
        self._listener = listener
        self.reused = True

    def reusable(self) -> bool:
        """The answer was complete and framed, nothing followed it, and both sides allow more."""
        request = self._request
        return (
            self._tunnel is None
            and request is not None
            and request.ended
            and request.keep_alive
            and self._answered
            and self._keep_alive
            and not self._extra
            and self.transport.connected
        )

    def extra_bytes(self) -> int:
        """Bytes the upstream sent after the end of its answer (never relayed)."""
        return self._extra

    # Sending the request.

    def send_head(self, request: UpstreamRequest, head_limit: int, *, at_once: bool = False) -> None:
        """
        Start a request; ``head_limit`` is proxy_buffer_size.  ``at_once``
        (a request without body) sends the head now; a head whose body
        follows waits for the reactor's write, so a body refused as it is
        read (a bad chunk) is refused before the upstream saw anything.
        """
        writer = self._request = RequestWriter(request)
        self._gate = HeadGate(_answer_limits(head_limit), request=False)
        self._body = None
        self._done = self._answered = self._keep_alive = False
        self._extra = self._informational = 0
        self.response_bytes = 0
        self.request_bytes = 0
        self.requests += 1
        self._write(writer.head, at_once)

    def send_body(self, data: bytes) -> None:
        self._write(self._request.body(data))  # type: ignore[union-attr]

    def end_body(self) -> None:
        self._write(self._request.end())  # type: ignore[union-attr]

    def _write(self, data: bytes, at_once: bool = True) -> None:
        """Counted for ``$upstream_bytes_sent``; ``at_once`` goes to the socket now if it can."""
        self.request_bytes += len(data)
        if at_once:
            self.direct_write(data)
        else:
            self.transport.write(data)

    # Receiving the answer.

    def dataReceived(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self.response_bytes += len(data)
        if self._idle is not None:
            self._retire()
        elif self._done:
            return
        elif self._gate is not None:
            self._read_head(data)
        elif self._body is not None:
            self._read_body(data)

    def _read_head(self, data: bytes) -> None:
        """Heads (1xx first, maybe) pass the gate, which parses them, one by one."""
        gate = self._gate
        assert gate is not None
        listener = self._listener
        while not self._done:
            try:
                raw = gate.feed(data)
                if raw is None:
                    return
                head = check_response_head(raw, gate.limits)
            except RequestError as e:
                self._done = True
                listener.upstream_invalid(e.detail)
                return
            data = b""
            status = head.status
            if status == 101:
                self._done = True
                listener.upstream_switch(head, gate.take_rest())
                return
            if status < 200:
                # Relayed at once, without backpressure: all of them must fit proxy_buffer_size.
                self._informational += len(raw)
                if self._informational > gate.limits.total:
                    self._done = True
                    listener.upstream_invalid("upstream sent too many informational responses")
                    return
                listener.upstream_informational(head)
                continue
            self._gate = None
            self._start_body(head, gate.take_rest(), max(gate.limits.total, _CHUNK_LINE_LIMIT))
            return

    def _start_body(self, head: ResponseHead, rest: bytes, line_limit: int) -> None:
        """The final head: reported, then its body (if any) read from what came with it."""
        method = self._request.method  # type: ignore[union-attr]
        body = response_body(method, head, line_limit)
        self._keep_alive = keeps_alive(head, body)
        self._listener.upstream_head(head)
        if self._done:  # the exchange moved on (a retry on this status)
            return
        if body is None:
            self._end(rest)
            return
        self._body = body
        self._read_body(rest)

    def _read_body(self, data: bytes) -> None:
        try:
            rest = self._body.feed(data, self._deliver)  # type: ignore[union-attr]
        except BodyError as e:
            self._done = True
            self._listener.upstream_invalid(str(e))
            return
        if rest is not None and not self._done:
            self._end(rest)

    def _deliver(self, data: bytes) -> None:
        """The body reader's sink: decoded bytes go on while the exchange still wants them."""
        if not self._done:
            self._listener.upstream_data(data)

    def _end(self, rest: bytes) -> None:
        """The answer ended by its framing; ``rest`` followed it."""
        self._done = self._answered = True
        self._body = None
        self._extra = len(rest)
        self._listener.upstream_end()

    def become_tunnel(self, tunnel: Tunnel) -> None:
        """From now on every byte goes straight to the tunnel, unparsed."""
        self._tunnel = tunnel
        self.dataReceived = tunnel.from_upstream  # type: ignore[method-assign]
        self._request = self._gate = None  # no parser state kept per tunnel

    def readConnectionLost(self) -> None:
        if self._tunnel is not None:
            self._tunnel.upstream_eof()
            return
        if self._idle is not None:
            self._retire()
            return
        if not self._done and self._gate is not None:
            # Closed before a complete head: nginx's "error" condition (retried
            # by default), whether or not part of a head had arrived.
            self._done = True
            detail = "while reading response header" if self._gate.pending else "before the response head"
            self._listener.upstream_lost(Failure(ConnectionDone(f"upstream prematurely closed connection {detail}")))
        elif not self._done and self._body is not None:
            self._body_closed(self._body)
        self.transport.loseConnection()

    def _body_closed(self, body: BodyReader) -> None:
        """The upstream closed mid-body: the end of a body read until the close, else a body cut short."""
        try:
            body.eof()
        except BodyError as e:
            self._done = True
            self._listener.upstream_lost(Failure(ConnectionDone(str(e))))
            return
        self._end(b"")

    def writeConnectionLost(self) -> None:
        """Our write shutdown completed; nothing to do before the tunnel."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._tunnel is not None:
            self._tunnel.upstream_lost()
        elif self._idle is not None:
            self._idle.drop(self)
            self._idle = None
        elif not self._done:
            self._done = True
            self._listener.upstream_lost(reason)

    def stop(self) -> None:
        """Stop reporting: the exchange no longer wants this connection."""
        self._done = True
        self.transport.abortConnection()

    def _retire(self) -> None:
        """An idle connection that spoke or closed is of no more use."""
        slot, self._idle = self._idle, None
        if slot is not None:
            slot.drop(self)
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


class UpstreamTLSError(Exception):
    """The TLS handshake with an upstream failed; the message says why, in nginx's words."""


class Connecting(TypingProtocol):
    """A connection attempt under way (Twisted's ``IConnector``), as far as the exchange needs it."""

    def disconnect(self) -> None: ...


class Connect(TypingProtocol):
    """
    Opens one connection to ``peer`` whose events go to ``listener``: what
    an endpoint's ``connect`` is to Twisted, with the peer chosen per attempt.
    A failed connect or TLS handshake reaches ``upstream_connect_failed``.
    """

    def __call__(self, peer: Peer, listener: UpstreamListener) -> Connecting: ...


class PeerConnector:
    """
    How one location reaches its peers, built once per configuration:
    TCP or unix (as each peer says), in plain text, under
    ``proxy_connect_timeout``.  The TLS connector of :mod:`wstunnel.net.tls`
    only changes the factory.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def factory(self, listener: UpstreamListener, clock: IReactorTime) -> IProtocolFactory:
        return UpstreamFactory(listener)

    def bind(self, reactor: IReactorTCP, clock: IReactorTime) -> Connect:
        """The connect of one exchange, on the reactor its client connection was accepted by."""

        # wstunnel's own connector needs a reactor that polls descriptors; a test reactor records connectTCP.
        own = isinstance(reactor, PosixReactorBase)

        def connect(peer: Peer, listener: UpstreamListener) -> Connecting:
            factory = self.factory(listener, clock)
            if peer.unix:
                unix: IReactorUNIX = reactor  # type: ignore[assignment]
                return unix.connectUNIX(peer.host, factory, timeout=self.timeout)
            if own:
                return dial(reactor, clock, peer.host, peer.port, factory, self.timeout)  # type: ignore[arg-type]
            return reactor.connectTCP(peer.host, peer.port, factory, timeout=self.timeout)

        return connect
