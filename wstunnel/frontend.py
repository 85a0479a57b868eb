"""
The client side: one Protocol per accepted connection.

It parses requests with an ``h11`` server connection, routes each through
the core (routing, variables, header rewriting), hands it to an
:class:`~wstunnel.exchange.Exchange`, writes what the exchange reports
back, and after a valid 101 turns the connection into a tunnel.
"""

from __future__ import annotations

from enum import Enum
from typing import Callable

import h11
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTCP,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http import datetimeToString
from zope.interface import implementer

from .attempts import UpstreamRecord
from .balancer import request_key
from .errors import RequestError, error_page, reason_phrase
from .exchange import Exchange
from .flow import Throttle, arm_abort
from .headers import BodyFraming, client_response_headers, upgrade_offer, upstream_request
from .logformat import LogEntry, bare_vars, write_entry
from .logs import ScopedLogger
from .metrics import status_page
from .model import Binding, ErrorLog, Location
from .proxyproto import ProxyPreamble, is_trusted
from .registry import Registry
from .request import ConnInfo, RequestHead
from .routing import Redirect, parse_target, redirect_url, request_host
from .runtime import Runtime
from .tls import check_request
from .tunnel import Tunnel, TunnelEnd
from .upstream import UpstreamProtocol
from .variables import RequestVars

__all__ = ["ClientProtocol", "ProxyFactory", "REQUEST_HEAD_LIMIT", "EARLY_DATA_LIMIT"]

# The largest request head we parse (nginx: large_client_header_buffers 4 8k).
REQUEST_HEAD_LIMIT = 32 * 1024
# Bytes a client may send after a complete request while its answer is
# pending (pipelined requests, WebSocket frames sent before the 101).
# Reading continues up to this bound so a client that leaves is noticed;
# past it the connection is paused (h11 itself would buffer without limit).
EARLY_DATA_LIMIT = 64 * 1024
# nginx's client_header_timeout and keepalive_timeout defaults.
HEAD_TIMEOUT = 60.0
KEEPALIVE_TIMEOUT = 75.0
# How long a closing client connection may take to flush before an abort.
CLOSE_GRACE = 60.0


class State(Enum):
    READING = "reading a request head"
    PROXYING = "an exchange is running"
    TUNNEL = "tunnel"
    CLOSED = "closed"


class _DateCache:
    """The ``Date`` value changes once a second; format it once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = datetimeToString(second)
        return self._value


http_date = _DateCache()


@implementer(IHalfCloseableProtocol)
class ClientProtocol(Protocol):
    """
    One client connection.

    ``_state`` is a :class:`State`.  In ``READING`` events are pulled from
    h11 as bytes arrive.  In ``PROXYING`` they are pulled only while the
    request body streams upstream (``_body_to`` is set); before the
    upstream is connected and after the body ended the transport is read
    only up to ``EARLY_DATA_LIMIT``.  In ``TUNNEL`` ``dataReceived`` is
    the tunnel's own method and nothing here runs per chunk.
    """

    log = ScopedLogger()

    def __init__(self, factory: "ProxyFactory") -> None:
        self._factory = factory
        self._clock = factory.clock
        self._state = State.READING
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=REQUEST_HEAD_LIMIT)
        self._exchange: Exchange | None = None
        self._body_to: UpstreamProtocol | None = None
        self._body_throttle: Throttle | None = None
        self._response_throttle: Throttle | None = None
        self._tunnel: Tunnel | None = None
        self._timer: IDelayedCall | None = None
        self._abort: IDelayedCall | None = None
        self._early = 0
        self._paused = False
        self._in_pump = False
        self._request_complete = False
        self._head: RequestHead | None = None
        self._location: Location | None = None
        self._close_after = False
        self._started = 0.0
        self._status = 0
        self._body_bytes = 0
        self._rv: RequestVars | None = None
        self._upstream_record: UpstreamRecord | None = None
        self._tunnel_done: Callable[[Tunnel], None] | None = None
        self._close_reason: str | None = None  # $tunnel_close_reason
        self._sent = 0  # $bytes_sent: every byte written to the client for this request
        self._received = 0  # bytes read from the client on this connection
        self._consumed = 0  # of those, the bytes h11 had parsed when the last request was logged
        self.runtime: Runtime = factory.runtime()
        self.conn: ConnInfo | None = None
        self.peer_text = "-"
        self.serial = 0  # $connection
        self.requests = 0  # $connection_requests

    # Connection life.

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        local = self.transport.getHost()
        scheme = "https" if ISSLTransport.providedBy(self.transport) else "http"
        self.conn = ConnInfo(
            remote_addr=peer.host,
            remote_port=peer.port,
            server_addr=local.host,
            server_port=local.port,
            scheme=scheme,
        )
        self.peer_text = f"{peer.host}:{peer.port}"
        self.serial = self._factory.registry.admit(self, self.runtime.config.workers.connections)
        if not self.serial:
            return
        self._timer = self._clock.callLater(HEAD_TIMEOUT, self._head_timed_out)
        binding = self._factory.binding(self.runtime, local.host)
        if binding.proxy_protocol:
            self._expect_proxy_header(binding)

    def dataReceived(self, data: bytes) -> None:
        self._received += len(data)
        self._h11.receive_data(data)
        if self._state is State.PROXYING and self._body_to is None:
            self._early += len(data)
            if self._early > EARLY_DATA_LIMIT and not self._paused:
                self._pause()
            return
        self._pump()

    def readConnectionLost(self) -> None:
        if self._tunnel is not None:
            self._tunnel.client_eof()
            return
        # Before a tunnel a FIN ends the client's part, as nginx treats it.
        self._client_gone()
        self._close()

    def writeConnectionLost(self) -> None:
        """Our write shutdown (tunnel half-close) completed."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._factory.registry.release(self)
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        if self._tunnel is not None:
            self._tunnel.client_lost()
            return
        self._client_gone()
        self._state = State.CLOSED
        self._cancel_timer()

    def _client_gone(self) -> None:
        """The client left while its request was at the upstream (nginx's 499)."""
        if self._exchange is not None and self._state is State.PROXYING:
            exchange, self._exchange = self._exchange, None
            exchange.cancel()
            self._unregister_all()
            if self._status == 0:
                self._status = 499
            self._log_request()

    # Reading requests.

    def _pump(self) -> None:
        """
        Pull events while the state allows.  Re-entry (a request answered
        at once from inside the loop) only marks the loop to go on, so
        pipelined requests never deepen the stack.
        """
        if self._in_pump:
            return
        self._in_pump = True
        try:
            self._pull_events()
        finally:
            self._in_pump = False

    def _pull_events(self) -> None:
        conn = self._h11
        while self._state is State.READING or self._body_to is not None:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                self._protocol_error(e)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            kind = type(event)
            if kind is h11.Request:
                self._begin(event)
            elif kind is h11.Data:
                self._body_to.send_body(event.data)  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                self._body_done()
            elif kind is h11.ConnectionClosed:
                self._close()
                return

    def _protocol_error(self, error: h11.RemoteProtocolError) -> None:
        self.log.info(
            "client {client} sent an invalid request: {error}", client=self.peer_text, error=str(error)
        )
        if self._state is State.PROXYING:
            # The head was fine but the body framing broke mid-way.
            self._client_gone()
            self._close()
            return
        self._started = self._clock.seconds()
        self.fail(error.error_status_hint, str(error), close=True)

    def _begin(self, event: h11.Request) -> None:
        self._cancel_timer()
        self.requests += 1
        self._factory.registry.stats.request_started()
        self._started = self._clock.seconds()
        self._status = 0
        self._body_bytes = 0
        self._sent = 0
        self._rv = None
        self._location = None
        self._upstream_record = None
        self._close_after = False
        self._request_complete = False
        head = RequestHead(
            method=event.method,
            target=event.target,
            http_version=event.http_version,
            headers=tuple(event.headers.raw_items()),
        )
        self._head = head
        self._state = State.PROXYING
        try:
            self._route(head)
        except RequestError as e:
            self.log.info("request from {client} refused: {error}", client=self.peer_text, error=str(e))
            self.fail(e.status, e.detail, close=e.status == 400)

    def _route(self, head: RequestHead) -> None:
        runtime = self.runtime
        conn = self.conn
        assert conn is not None
        target = parse_target(head.target)
        host = request_host(head, target)
        binding = self._factory.binding(runtime, conn.server_addr)
        server = runtime.router.select_server(binding, host)
        if conn.scheme == "https":
            conn = self.conn = check_request(self.transport, conn, runtime.router, binding, server)
        found = runtime.router.find_location(server, target.uri)
        vhost = host if host is not None else server.name
        if isinstance(found, Redirect):
            self._respond(301, [(b"Location", redirect_url(found, target, conn, vhost).encode("latin-1"))])
            return
        if found is not None and found.status_page is not None:
            self._location = found
            self._respond(200, *status_page(found.status_page, self._factory.registry.stats))
            return
        if found is None or found.proxy_pass is None:
            raise RequestError(404, f"no location for {target.uri!r}")
        self._location = found
        rv = RequestVars(
            config=runtime.config,
            server=server,
            location=found,
            conn=conn,
            head=head,
            target=target,
            host=vhost,
        )
        self._rv = rv
        framing = _framing(head)
        offer = upgrade_offer(head)
        request = upstream_request(found, head, rv, upgrade=offer, body=framing)
        if offer:
            # An upgrade that is not accepted must not leave the client's
            # next bytes to be read as a new request: close after the answer.
            self._close_after = True
        self._exchange = Exchange(
            client=self,
            head=head,
            request=request,
            location=found,
            balancer=runtime.balancer(found.proxy_pass.upstream.name),
            key=request_key(found.proxy_pass.upstream, rv),
            reactor=self._factory.reactor,
            clock=self._clock,
            has_body=framing not in (BodyFraming.NONE, 0),
        )
        self._upstream_record = self._exchange.record
        self._early = 0
        self._pause()
        self._exchange.start()

    # Called by the exchange.

    def stream_body(self, upstream: UpstreamProtocol) -> None:
        """The upstream has the request head: let the body flow to it."""
        if self._request_complete:
            # A retry of a request whose (empty) body was already read.
            upstream.end_body()
            self._exchange.request_sent()  # type: ignore[union-attr]
            return
        self._body_to = upstream
        if self._h11.they_are_waiting_for_100_continue:
            self._send(self._h11.send(h11.InformationalResponse(status_code=100)))
        if self._h11.their_state is h11.SEND_BODY:
            self._body_throttle = Throttle(
                self.transport, self._clock, self._location.timeouts.send, self._body_stalled
            )
            upstream.transport.registerProducer(self._body_throttle, True)
        self._resume()
        self._pump()

    def _body_done(self) -> None:
        upstream = self._body_to
        assert upstream is not None
        self._body_to = None
        self._request_complete = True
        self._early = 0
        if self._body_throttle is not None:
            self._body_throttle.revoke()
            self._body_throttle = None
            upstream.transport.unregisterProducer()
        upstream.end_body()
        if self._exchange is not None:
            self._exchange.request_sent()

    def _body_stalled(self) -> None:
        self.log.info("upstream did not read the request body in time, client: {client}",
                      client=self.peer_text)
        if self._exchange is not None:
            self._exchange.upstream_lost(Failure(TimeoutError("proxy_send_timeout")))

    def may_retry(self) -> bool:
        """A retry is safe only while the client has seen nothing."""
        return self._h11.our_state is h11.SEND_RESPONSE and self._body_to is None

    def send_informational(self, event: h11.InformationalResponse) -> None:
        if self._head is not None and self._head.http_version == b"1.1":
            try:
                data = self._h11.send(
                    h11.InformationalResponse(
                        status_code=event.status_code, headers=event.headers, reason=event.reason
                    )
                )
            except h11.LocalProtocolError:
                return
            self._send(data)

    def send_head(self, event: h11.Response, upstream: UpstreamProtocol | None) -> None:
        headers = client_response_headers(
            event.status_code,
            event.headers.raw_items(),
            request_method=self._head.method,  # type: ignore[union-attr]
            date=http_date(self._clock.seconds()),
        )
        if self._close_after:
            headers.append((b"Connection", b"close"))
        self._status = event.status_code
        self._send(
            self._h11.send(
                h11.Response(status_code=event.status_code, headers=headers, reason=event.reason)
            )
        )
        if upstream is not None:
            self._response_throttle = Throttle(
                upstream.transport, self._clock, self._location.timeouts.client_send,  # type: ignore[union-attr]
                self._client_stalled,
            )
            self.transport.registerProducer(self._response_throttle, True)

    def send_data(self, data: bytes) -> None:
        self._body_bytes += len(data)
        self._send(self._h11.send(h11.Data(data=data)))

    def end_response(self) -> None:
        self._send(self._h11.send(h11.EndOfMessage()))
        self._exchange = None
        self._request_done()

    def abort_response(self) -> None:
        """The upstream broke off mid-body: close without a final chunk."""
        self._exchange = None
        self._unregister_all()
        self._log_request()
        self._close()

    def fail(self, status: int, detail: str, *, close: bool = False) -> None:
        """Answer with an error page, or cut the connection if it is too late."""
        self._exchange = None
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            self.abort_response()
            return
        self._close_after = self._close_after or close
        self._respond(status, [(b"Content-Type", b"text/html")], error_page(status))

    def _respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        """A response wstunnel makes itself (errors, redirects)."""
        if status == 301 and not body:
            body = error_page(301)
            headers.append((b"Content-Type", b"text/html"))
        all_headers = [
            (b"Server", b"wstunnel"),
            (b"Date", http_date(self._clock.seconds())),
            *headers,
            (b"Content-Length", str(len(body)).encode()),
        ]
        if self._close_after:
            all_headers.append((b"Connection", b"close"))
        self._status = status
        conn = self._h11
        data = conn.send(
            h11.Response(status_code=status, headers=all_headers, reason=reason_phrase(status))
        )
        if body and self._head is not None and self._head.method != b"HEAD":
            data += conn.send(h11.Data(data=body))
            self._body_bytes += len(body)
        data += conn.send(h11.EndOfMessage())
        self._send(data)
        self._request_done()

    def switch(
        self,
        upstream: UpstreamProtocol,
        event: h11.InformationalResponse,
        early: bytes,
        on_end: Callable[[], None],
    ) -> None:
        """A valid 101: send it on and join the two connections; ``on_end`` runs when the tunnel ends."""
        headers = client_response_headers(
            101,
            event.headers.raw_items(),
            request_method=self._head.method,  # type: ignore[union-attr]
            date=http_date(self._clock.seconds()),
        )
        reason = event.reason or b"Switching Protocols"
        lines = [b"HTTP/1.1 101 " + reason]
        lines.extend(name + b": " + value for name, value in headers)
        self._send(b"\r\n".join(lines) + b"\r\n\r\n")
        self._status = 101
        self._exchange = None
        self._tunnel_done = on_end
        self._state = State.TUNNEL
        self._paused = False
        tunnel = Tunnel(
            client=self.transport,
            upstream=upstream.transport,
            clock=self._clock,
            timeouts=self._location.timeouts,  # type: ignore[union-attr]
            on_end=self._tunnel_ended,
            error_logs=self._location.error_logs,  # type: ignore[union-attr]
        )
        self._tunnel = tunnel
        self._factory.registry.stats.tunnel_opened()
        self.dataReceived = tunnel.from_client  # type: ignore[method-assign]
        upstream.become_tunnel(tunnel)
        tunnel.start(self._h11.trailing_data[0], early)

    def _tunnel_ended(self, tunnel: Tunnel) -> None:
        self._close_reason = (tunnel.reason or TunnelEnd.CLIENT_CLOSED).name.lower()
        self._factory.registry.stats.tunnel_closed(
            self._close_reason,
            self._clock.seconds() - self._started,
            tunnel.client_bytes,
            tunnel.upstream_bytes,
        )
        if self._tunnel_done is not None:
            self._tunnel_done(tunnel)
        self._body_bytes = tunnel.upstream_bytes
        self._sent += tunnel.upstream_bytes
        self._log_request()
        self._state = State.CLOSED

    # After a response.

    def _request_done(self) -> None:
        self._unregister_all()
        self._log_request()
        conn = self._h11
        if self._close_after or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            self._close()
            return
        conn.start_next_cycle()
        self._state = State.READING
        self._head = None
        self._timer = self._clock.callLater(KEEPALIVE_TIMEOUT, self._head_timed_out)
        self._resume()
        self._pump()

    def _log_request(self) -> None:
        head = self._head
        location = self._location
        if head is None:
            return
        consumed = self._received - len(self._h11.trailing_data[0])
        request_length, self._consumed = consumed - self._consumed, consumed
        self._factory.registry.stats.request_done(self._status, bool(head.values(b"upgrade")))
        targets = location.access_logs if location is not None else self._default_access_logs()
        if not targets:
            return
        runtime, conn = self.runtime, self.conn
        assert conn is not None
        rv = self._rv
        if rv is None:
            server = self._factory.binding(runtime, conn.server_addr).default
            rv = bare_vars(runtime.config, server, conn, head)
        entry = LogEntry(
            conn=conn,
            head=head,
            vars=rv,
            started=self._started,
            ended=self._clock.seconds(),
            status=self._status,
            body_bytes_sent=self._body_bytes,
            upstream=self._upstream_record,
            bytes_sent=self._sent,
            request_length=request_length,
            connection=self.serial,
            connection_requests=self.requests,
            close_reason=self._close_reason,
        )
        write_entry(runtime.access_logs, runtime.config.log_formats, targets, entry)

    def _default_access_logs(self) -> tuple:
        """Requests that matched no location log where the server's first location would."""
        binding = self._factory.binding(self.runtime, self.conn.server_addr)  # type: ignore[union-attr]
        locations = binding.default.locations
        return locations[0].access_logs if locations else ()

    # Helpers.

    @property
    def error_logs(self) -> tuple[ErrorLog, ...]:
        """
        Where this connection's messages go (ScopedLogger): its request's
        location's error_logs, else those of the default server of the
        address it arrived on, as nginx logs a connection's messages.
        """
        if self._location is not None:
            return self._location.error_logs
        if self.conn is None:
            return self.runtime.config.error_logs
        return self._factory.binding(self.runtime, self.conn.server_addr).default.error_logs

    def _send(self, data: bytes) -> None:
        """Every write to the client before a tunnel, counted where it is written."""
        self._sent += len(data)
        self.transport.write(data)

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()

    def _unregister_all(self) -> None:
        """Drop the producer registrations this protocol made (it owns them)."""
        if self._response_throttle is not None:
            self._response_throttle.revoke()
            self._response_throttle = None
            self.transport.unregisterProducer()
        if self._body_throttle is not None and self._body_to is not None:
            self._body_throttle.revoke()
            self._body_throttle = None
            self._body_to.transport.unregisterProducer()
        self._body_to = None

    def _client_stalled(self) -> None:
        self.log.info("client {client} did not read the response in time", client=self.peer_text)
        if self._exchange is not None:
            exchange, self._exchange = self._exchange, None
            exchange.cancel()
        self._unregister_all()
        self._log_request()
        self._state = State.CLOSED
        self.transport.abortConnection()

    def _head_timed_out(self) -> None:
        self._timer = None
        self.log.info("client {client} timed out waiting for a request", client=self.peer_text)
        self._close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _close(self) -> None:
        if self._state is State.CLOSED and self._abort is not None:
            return
        self._state = State.CLOSED
        self._cancel_timer()
        self._unregister_all()
        self.transport.loseConnection()
        if self._abort is None:
            self._abort = arm_abort(self._clock, self.transport, CLOSE_GRACE)


    # Operations: limits, PROXY protocol, status pages, graceful shutdown.

    def refuse(self) -> None:
        """Past worker_connections: close before reading anything."""
        self._state = State.CLOSED
        self.transport.abortConnection()

    def _expect_proxy_header(self, binding: Binding) -> None:
        conn = self.conn
        assert conn is not None
        if binding.real_ip_from and not is_trusted(conn.remote_addr, binding.real_ip_from):
            self.log.info("PROXY protocol header from untrusted {client} refused", client=self.peer_text)
            self.proxy_header_failed()
            return
        rewrite = binding.real_ip_proxy_protocol and bool(binding.real_ip_from)
        self.dataReceived = ProxyPreamble(self, conn, rewrite).feed  # type: ignore[method-assign]

    def proxy_header_received(self, conn: ConnInfo, rest: bytes) -> None:
        del self.dataReceived
        self.conn = conn
        if rest:
            self.dataReceived(rest)

    def proxy_header_failed(self) -> None:
        self._state = State.CLOSED
        self._cancel_timer()
        self.transport.abortConnection()

    @property
    def activity(self) -> str:
        """stub_status's view: reading a request head, writing (busy), or waiting (idle)."""
        if self._state is State.READING:
            return "reading" if self._h11.trailing_data[0] else "waiting"
        return "writing"

    @property
    def tunnel_bytes(self) -> tuple[int, int] | None:
        tunnel = self._tunnel
        if tunnel is None or self._state is State.CLOSED:
            return None
        return tunnel.client_bytes, tunnel.upstream_bytes

    def drain(self) -> None:
        """Graceful shutdown begins: an idle connection closes now, a busy one after its response."""
        self._close_after = True
        if self._state is State.READING and not self._h11.trailing_data[0]:
            self._close()

    def shut_down(self) -> None:
        """The shutdown timeout passed: close whatever is still running."""
        if self._tunnel is not None:
            self._tunnel.close(TunnelEnd.SHUTDOWN)
        elif self._state is not State.CLOSED:
            self._client_gone()
            self._close()

    def abort(self) -> None:
        """Last resort of a shutdown: drop both legs now."""
        if self._tunnel is not None:
            self._tunnel.abort()
        self.transport.abortConnection()


def _framing(head: RequestHead) -> "BodyFraming | int":
    """How the client framed its body (h11 has already validated it)."""
    if head.values(b"transfer-encoding"):
        return BodyFraming.CHUNKED
    lengths = head.values(b"content-length")
    if lengths:
        return int(lengths[0])
    return BodyFraming.NONE


class ProxyFactory(Factory):
    """
    Accepts client connections for one listening address.  It reads the
    current runtime through ``runtime`` at each accept, so a reload changes
    new connections only.  ``registry`` holds the process's open client
    connections (for draining, limits and status pages), shared by every
    listener.
    """

    protocol = ClientProtocol
    noisy = False

    def __init__(
        self,
        *,
        runtime: Callable[[], Runtime],
        key: tuple[str, int],
        reactor: IReactorTCP,
        clock: IReactorTime | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.runtime = runtime
        self.key = key
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor  # type: ignore[assignment]
        self.registry = registry if registry is not None else Registry(self.clock)
        self.connections: set[ClientProtocol] = self.registry.clients

    def binding(self, runtime: Runtime, local_host: str) -> Binding:
        return runtime.binding_for(self.key, local_host)

    def buildProtocol(self, addr: object) -> ClientProtocol:
        protocol = ClientProtocol(self)
        protocol.factory = self
        return protocol

