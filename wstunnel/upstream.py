"""
The upstream side: one connection to one peer, one request at a time.

The protocol writes the rewritten request with an ``h11`` client connection
(a fresh one per request, so a kept-alive connection starts clean), checks
every response head with :mod:`wstunnel.gate` before h11 parses it, and
reports every event to its :class:`UpstreamListener` (the exchange).  After
a 101 it stops parsing and hands its data straight to the tunnel.  Between
requests it may rest in an :class:`~wstunnel.pool.IdlePool`.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

import h11
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from .errors import RequestError
from .fastwrite import direct_writer
from .gate import HeadGate, HeadLimits, check_response_head
from .headers import UpstreamRequest
from .model import Peer
from .tunnel import Tunnel

__all__ = ["IdleSlot", "UpstreamFactory", "UpstreamListener", "UpstreamProtocol"]

# h11 still bounds what it holds incomplete after the head: chunk-size lines.
_CHUNK_LINE_LIMIT = 16 * 1024


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


class IdleSlot(TypingProtocol):
    """Where an idle connection rests (the pool); told when it must leave."""

    def drop(self, upstream: "UpstreamProtocol") -> None: ...


@implementer(IHalfCloseableProtocol)
class UpstreamProtocol(Protocol):
    """
    Per request: sending, then reading a head through the gate
    (``_gate`` set), then the body through h11, until the response has
    ended (``_done``) or the tunnel has taken over (``dataReceived``
    rebound to the tunnel).  While parked in a pool ``_idle`` is set and
    any byte or close from the upstream retires the connection.
    """

    def __init__(self, listener: UpstreamListener) -> None:
        self._listener = listener
        self._h11 = h11.Connection(h11.CLIENT)
        self._gate: HeadGate | None = None
        self._done = False
        self._eof = False
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
        self._direct = direct_writer(self.transport)
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
        conn = self._h11
        return (
            self._tunnel is None
            and conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
            and not conn.trailing_data[0]
            and self.transport.connected
        )

    def extra_bytes(self) -> int:
        """Bytes the upstream sent after the end of its answer (never relayed)."""
        return len(self._h11.trailing_data[0])

    # Sending the request.

    def send_head(self, request: UpstreamRequest, head_limit: int, *, at_once: bool = False) -> None:
        """
        Start a request; ``head_limit`` is proxy_buffer_size.  ``at_once``
        (a request without body) sends the head now; a head whose body
        follows waits for the reactor's write, so a body refused as it is
        read (a bad chunk) is refused before the upstream saw anything.
        """
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max(head_limit, _CHUNK_LINE_LIMIT))
        self._gate = HeadGate(HeadLimits(line=head_limit, total=head_limit, count=None), request=False)
        self._done = False
        self.response_bytes = 0
        self.request_bytes = 0
        self.requests += 1
        if request.http_version == b"1.1":
            event = h11.Request(method=request.method, target=request.target, headers=request.headers)
            self._write(self._h11.send(event), at_once)
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
        self._write(b"\r\n".join(lines) + b"\r\n\r\n", at_once)

    def send_body(self, data: bytes) -> None:
        self._write(self._h11.send(h11.Data(data=data)))

    def end_body(self) -> None:
        self._write(self._h11.send(h11.EndOfMessage()))

    def _write(self, data: bytes, at_once: bool = True) -> None:
        """Counted for ``$upstream_bytes_sent``; ``at_once`` goes to the socket now if it can."""
        self.request_bytes += len(data)
        if at_once:
            self._direct(data)
        else:
            self.transport.write(data)

    # Receiving the answer.

    def dataReceived(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self.response_bytes += len(data)
        if self._idle is not None:
            self._retire()
        elif self._gate is not None:
            self._read_head(data)
        elif not self._done:
            self._h11.receive_data(data)
            self._pump()

    def _read_head(self, data: bytes) -> None:
        """Heads (1xx first, maybe) pass the gate one by one, then h11 parses each."""
        gate = self._gate
        assert gate is not None
        listener = self._listener
        while not self._done:
            try:
                head = gate.feed(data)
                if head is None:
                    return
                check_response_head(head, gate.limits)
                self._h11.receive_data(head)
                event = self._h11.next_event()
            except (RequestError, h11.RemoteProtocolError) as e:
                self._done = True
                listener.upstream_invalid(getattr(e, "detail", str(e)))
                return
            data = b""
            kind = type(event)
            if kind is h11.InformationalResponse and event.status_code == 101:
                self._done = True
                listener.upstream_switch(event, gate.take_rest())
                return
            if kind is h11.InformationalResponse:
                listener.upstream_informational(event)
                continue
            self._gate = None
            rest = gate.take_rest()
            if rest:  # b"" would tell h11 the connection closed
                self._h11.receive_data(rest)
            listener.upstream_head(event)
            self._pump()
            return

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
                # h11 slices its buffer into bytearrays; transports take bytes.
                listener.upstream_data(bytes(event.data))
            elif kind is h11.EndOfMessage:
                self._done = True
                listener.upstream_end()
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
        self._h11 = self._gate = None  # type: ignore[assignment]  # no parser state kept per tunnel

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
        elif not self._done:
            self._eof = True
            self._h11.receive_data(b"")
            self._pump()
        self.transport.loseConnection()

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
