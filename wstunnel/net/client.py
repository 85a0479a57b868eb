"""
The client side: one Protocol per accepted connection.

Each request head is checked and parsed by :mod:`wstunnel.wire.heads` (limits,
strict syntax, unambiguous framing) and its body read by a reader of
:mod:`wstunnel.wire.bodies`.  The request is routed through the core (routing,
variables, header rewriting) and handed to an
:class:`~wstunnel.net.exchange.Exchange`; what the exchange reports is written
back framed by :mod:`wstunnel.wire.framing`; after a valid 101 the connection
becomes a tunnel.
"""

from __future__ import annotations

from enum import Enum
from typing import Callable

from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTCP,
    IReactorTime,
    ISSLTransport,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from wstunnel.core.attempts import UpstreamRecord
from wstunnel.balancing.balancer import request_key
from wstunnel.wire.bodies import LAST_CHUNK, BodyError, ChunkedBody, LengthBody, chunk
from wstunnel.net.bodytimer import BodyTimeout
from wstunnel.wire.errors import RequestError, error_page, reason_phrase
from wstunnel.net.exchange import Exchange, Phase
from wstunnel.net.fastwrite import direct_writer
from wstunnel.net.throttle import Drained, Throttle, arm_abort
from wstunnel.wire.framing import BodyMode, ResponsePlan, client_wants_keepalive, head_bytes, http_date, plan_response
from wstunnel.wire.heads import HeadGate, HeadLimits, HeadSoFar, Http2Preface, check_request_head, head_so_far
from wstunnel.core.headers import BodyFraming, client_response_headers
from wstunnel.core.logformat import LogEntry, bare_vars, write_entry
from wstunnel.obs.logs import ScopedLogger
from wstunnel.obs.metrics import status_page
from wstunnel.config.model import Binding, ClientLimits, ErrorLog, Location
from wstunnel.config.tls import TLSInfo
from wstunnel.wire.proxyproto import ProxyPreamble, is_trusted
from wstunnel.net.registry import Registry
from wstunnel.wire.request import ConnInfo, RequestHead, lower_tokens
from wstunnel.wire.response import ResponseHead
from wstunnel.core.dispatch import Forward, Respond, StatusPage, body_framing, prepare
from wstunnel.net.runtime import Runtime
from wstunnel.net.tls import PLAIN_HTTP_NOTE, session_info
from wstunnel.net.tunnel import Tunnel, TunnelEnd
from wstunnel.net.upstream import UpstreamProtocol
from wstunnel.core.variables import RequestVars

__all__ = ["ClientProtocol", "ProxyFactory", "EARLY_DATA_LIMIT", "H2_REFUSAL"]

# Bytes a client may send after a complete request while its answer is
# pending (pipelined requests, WebSocket frames sent before the 101).
# Reading continues up to this bound so a client that leaves is noticed;
# past it the connection is paused.
EARLY_DATA_LIMIT = 64 * 1024
# How long a closing client connection may take to flush before an abort.
CLOSE_GRACE = 60.0


# An HTTP/2 client with prior knowledge gets HTTP/2's own answer: an empty
# SETTINGS (the server preface) and GOAWAY with HTTP_1_1_REQUIRED (0xd).
_GOAWAY_TEXT = b"wstunnel speaks HTTP/1.1 only"
H2_REFUSAL = (
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    + len(_GOAWAY_TEXT + b"\x00" * 8).to_bytes(3, "big") + b"\x07\x00\x00\x00\x00\x00"
    + b"\x00\x00\x00\x00\x00\x00\x00\x0d" + _GOAWAY_TEXT
)
# nginx closes the connection after these answers of its own.
_CLOSING_STATUSES = frozenset({400, 408, 413, 414, 431, 500, 501, 505})


class State(Enum):
    READING = "reading a request head"
    PROXYING = "an exchange is running"
    TUNNEL = "tunnel"
    CLOSED = "closed"


@implementer(IHalfCloseableProtocol)
class ClientProtocol(Protocol):
    """
    One client connection.

    ``_state`` is a :class:`State`.  In ``READING`` bytes collect in the
    head gate until a whole head is there.  In ``PROXYING`` bytes collect
    in the gate too and go to the request's body reader only while the body
    streams upstream (``_body_to`` is set); what follows the body stays in
    the gate for the next head or the tunnel.  Before the upstream is
    connected and after the body ended the transport is read only up to
    ``EARLY_DATA_LIMIT``.  In
    ``TUNNEL`` ``dataReceived`` is the tunnel's own method and nothing here
    runs per chunk.
    """

    log = ScopedLogger()
    # A connection's own state, in slots: as ~40 dict entries it cost 1.5 KB
    # per connection (an instance dict shares its keys only up to 30) and
    # was the largest single object of an idle tunnel (doc/performance.md).
    # ``dataReceived`` is rebound per instance (PROXY header, tunnel) and
    # lives in the instance dict Protocol still has.
    __slots__ = (
        "_abort", "_backlog", "_body", "_body_bytes", "_body_left", "_body_throttle", "_body_timer", "_body_to", "_clock",
        "_close_after", "_close_reason", "_continued", "_early", "_exchange", "_factory", "_fed", "_gate",
        "_head", "_head_so_far", "_idle_wait", "_in_pump", "_limits", "_location", "_paused",
        "_plan", "_request_complete", "_response_throttle", "_rv", "_sent", "_started", "_state",
        "_status", "_timer", "_tunnel", "_tunnel_done", "_upstream_record", "_write", "conn", "peer_text",
        "requests", "runtime", "serial",
    )

    def __init__(self, factory: "ProxyFactory") -> None:
        self._factory = factory
        self._clock = factory.clock
        self._state = State.READING
        self._body: LengthBody | ChunkedBody | None = None  # the request body's reader
        self._gate: HeadGate | None = None
        self._limits = ClientLimits()
        self._exchange: Exchange | None = None
        self._body_to: UpstreamProtocol | None = None
        self._body_throttle: Throttle | None = None
        self._body_timer: BodyTimeout | None = None  # client_body_timeout, while the body streams
        self._response_throttle: Throttle | None = None
        self._backlog: Throttle | None = None  # an answer the client has not read yet holds the next request
        self._tunnel: Tunnel | None = None
        self._timer: IDelayedCall | None = None
        self._idle_wait = False
        self._abort: IDelayedCall | None = None
        self._early = 0
        self._paused = False
        self._in_pump = False
        self._request_complete = False
        self._head: RequestHead | None = None
        self._head_so_far: HeadSoFar | None = None  # a refused or unfinished head, for the log
        self._location: Location | None = None
        self._plan: ResponsePlan | None = None
        self._close_after = False
        self._continued = False
        self._body_left: int | None = None
        self._started = 0.0
        self._status = 0
        self._body_bytes = 0
        self._rv: RequestVars | None = None
        self._upstream_record: UpstreamRecord | None = None
        self._tunnel_done: Callable[[Tunnel], None] | None = None
        self._close_reason: str | None = None  # $tunnel_close_reason
        self._sent = 0  # $bytes_sent: every byte written to the client for this request
        self._fed = 0  # $request_length: this request's head and the body bytes read so far
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
        self._write = direct_writer(self.transport)
        self.serial = self._factory.registry.admit(self, self.runtime.config.workers.connections)
        if not self.serial:
            return
        binding = self._factory.binding(self.runtime, local.host)
        # Before the head is read the virtual server is unknown: the
        # address's default server sets the head limits, as in nginx.
        self._limits = limits = binding.default.client
        self._gate = HeadGate(HeadLimits.for_buffers(limits.header_buffers, limits.header_buffer_size), request=True)
        self._timer = self._clock.callLater(limits.header_timeout, self._head_timed_out)
        if binding.proxy_protocol and not binding.ssl:
            # On a TLS socket the header precedes TLS: wstunnel.net.proxyfirst reads it.
            self._expect_proxy_header(binding)

    def dataReceived(self, data: bytes) -> None:
        state = self._state
        if state is State.READING:
            if self._idle_wait:
                self._head_started()
            self._gate.push(data)  # type: ignore[union-attr]
            self._pump()
            return
        if state is State.CLOSED:
            return
        self._gate.push(data)  # type: ignore[union-attr]
        if self._body_to is None:
            self._early += len(data)
            if self._early > EARLY_DATA_LIMIT and not self._paused:
                self._pause()
            return
        if self._body_timer is not None:
            self._body_timer.read()
        self._pump()

    def readConnectionLost(self) -> None:
        if self._tunnel is not None:
            self._tunnel.client_eof()
            return
        self._log_unfinished_head(400)
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
        self._log_unfinished_head(400)
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
        Pull heads and events while the state allows.  Re-entry (a request
        answered at once from inside the loop) only lets the running loop
        go on, so pipelined requests never deepen the stack.
        """
        if self._in_pump:
            return
        self._in_pump = True
        try:
            self._pull_events()
        finally:
            self._in_pump = False

    def _pull_events(self) -> None:
        while True:
            if self._state is State.READING:
                if not self._next_head():
                    return
                continue
            if self._body_to is None or not self._read_body():
                return

    def _read_body(self) -> bool:
        """The held bytes to the body reader; True once the body has ended (what follows stays held)."""
        gate = self._gate
        data = gate.take_rest()  # type: ignore[union-attr]
        try:
            rest = self._body.feed(data, self._body_data)  # type: ignore[union-attr]
        except BodyError as e:
            self._body_error(400, str(e))
            return False
        except RequestError as e:
            self._body_error(e.status, e.detail)
            return False
        if rest is None:
            self._fed += len(data)
            return False
        self._fed += len(data) - len(rest)
        gate.push(rest)  # type: ignore[union-attr]
        self._body_done()
        return True

    def _body_data(self, data: bytes) -> None:
        if self._body_left is not None:
            self._body_left -= len(data)
            if self._body_left < 0:
                raise RequestError(413, "request body over client_max_body_size")
        self._body_to.send_body(data)  # type: ignore[union-attr]

    def _next_head(self) -> bool:
        """Take the next head from the gate; False when there is none (yet)."""
        gate = self._gate
        assert gate is not None
        raw = None
        try:
            raw = gate.feed(b"")
            if raw is None:
                return False
            head = check_request_head(raw, gate.limits)
        except Http2Preface:
            self.log.info("client {client} sent an HTTP/2 preface", client=self.peer_text)
            self.transport.write(H2_REFUSAL)
            self._close()
            return False
        except RequestError as e:
            self._refuse(e, gate.held if raw is None else raw)
            return self._state is State.READING
        self._fed = len(raw)
        self._begin(head, _body_reader(head, gate.limits))
        return True

    def _refuse(self, error: RequestError, received: bytes) -> None:
        """A head refused before routing: answered, logged as far as it was read, closed."""
        self.log.info("client {client} sent an invalid request: {error}", client=self.peer_text, error=str(error))
        self._new_request()
        self._head_so_far = head_so_far(
            received, buffer_size=self._limits.header_buffer_size, too_long=error.status == 414
        )
        self._state = State.PROXYING
        self.fail(error.status, error.detail, close=True)

    def _body_error(self, status: int, detail: str) -> None:
        """The body broke its framing or the size limit mid-way: the exchange is off."""
        self.log.info("client {client}: {detail}", client=self.peer_text, detail=detail)
        self._drop_exchange()
        self.fail(status, detail, close=True)

    def _begin(self, head: RequestHead, body: LengthBody | ChunkedBody) -> None:
        self._cancel_timer()
        self._new_request()
        self._head = head
        self._body = body
        self._state = State.PROXYING
        self._route(head)

    def _new_request(self) -> None:
        """A request starts: counted, timed, and nothing of the previous one kept."""
        self.requests += 1
        self._factory.registry.stats.request_started()
        self._started = self._clock.seconds()
        self._status = 0
        self._body_bytes = 0
        self._sent = 0
        self._rv = None
        self._upstream_record = None
        self._close_after = False
        self._request_complete = False
        self._continued = False
        self._plan = None
        self._location = None
        self._body_left = None
        self._head_so_far = None

    def _route(self, head: RequestHead) -> None:
        runtime = self.runtime
        conn = self.conn
        assert conn is not None
        decision = prepare(
            config=runtime.config,
            router=runtime.router,
            binding=self._factory.binding(runtime, conn.server_addr),
            conn=conn,
            tls=_tls_standing(self.transport, conn),
            head=head,
            pooled=runtime.pools,
        )
        self.conn = decision.conn
        self._location = decision.location
        if isinstance(decision, Forward):
            self._forward(decision)
        elif isinstance(decision, Respond):
            self._respond(decision.status, list(decision.headers), decision.body)
        elif isinstance(decision, StatusPage):
            self._respond(200, *status_page(decision.location.status_page, self._factory.registry.stats))
        else:
            self._rv = decision.vars
            self._refused(decision.error)

    def _refused(self, error: RequestError) -> None:
        self.log.info("request from {client} refused: {error}", client=self.peer_text, error=str(error))
        self.fail(error.status, error.detail, close=error.status in _CLOSING_STATUSES, note=error.note)

    def _forward(self, forward: Forward) -> None:
        location, rv = forward.location, forward.vars
        self._body_left = forward.body_limit
        self._rv = rv
        self._close_after = forward.close_after
        assert location.proxy_pass is not None
        upstream = location.proxy_pass.upstream
        self._exchange = exchange = Exchange(
            client=self,
            head=self._head,
            request=forward.request,
            location=location,
            balancer=self.runtime.balancer(upstream.name),
            key=request_key(upstream, rv),
            reactor=self._factory.reactor,
            clock=self._clock,
            has_body=forward.has_body,
            pool=self.runtime.pools.get(upstream.name),
        )
        self._upstream_record = exchange.record
        self._early = 0
        exchange.start()
        if exchange.phase is Phase.CONNECTING:
            # Nothing is read until there is somewhere to send it.  A pooled
            # connection has taken the request already: no pause and resume.
            self._pause()

    # Called by the exchange.

    def stream_body(self, upstream: UpstreamProtocol) -> None:
        """The upstream has the request head: let the body flow to it."""
        if self._request_complete:
            # A retry of a request whose (empty) body was already read.
            upstream.end_body()
            self._exchange.request_sent()  # type: ignore[union-attr]
            return
        self._body_to = upstream
        if not self._continued and _expects_continue(self._head):  # type: ignore[arg-type]
            # Answered here, never forwarded (Expect is not sent upstream).
            self._continued = True
            self._send(head_bytes(100, b"Continue", ()))
        if not self._body.done:  # type: ignore[union-attr]
            location = self._location
            self._body_timer = BodyTimeout(
                self.transport, self._clock, location.client.body_timeout, self._body_timed_out  # type: ignore[union-attr]
            )
            self._body_throttle = Throttle(
                self._body_timer, self._clock, location.timeouts.send, self._body_stalled  # type: ignore[union-attr]
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
        self._stop_body_timer()
        if self._body_throttle is not None:
            self._body_throttle.revoke()
            self._body_throttle = None
            upstream.transport.unregisterProducer()
        upstream.end_body()
        if self._exchange is not None:
            self._exchange.request_sent()

    def _body_timed_out(self) -> None:
        """client_body_timeout: as in nginx, no answer and a close; 408 in the log if nothing was sent."""
        self._body_timer = None
        self.log.info("client {client} timed out sending the request body", client=self.peer_text)
        self._drop_exchange()
        if self._plan is None:
            self._status = 408
        self._log_request()
        self._close()

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.stop()
            self._body_timer = None

    def _body_stalled(self) -> None:
        self.log.info("upstream did not read the request body in time, client: {client}",
                      client=self.peer_text)
        if self._exchange is not None:
            self._exchange.upstream_lost(Failure(TimeoutError("proxy_send_timeout")))

    def may_retry(self) -> bool:
        """A retry is safe only while the client has seen nothing."""
        return self._plan is None and self._body_to is None

    def send_informational(self, response: ResponseHead) -> None:
        """1xx other than 100 (which we answer ourselves) go on to HTTP/1.1 clients."""
        if self._head is None or self._head.http_version != b"1.1" or response.status == 100:
            return
        headers = client_response_headers(
            response, request_method=self._head.method, date=http_date(self._clock.seconds()),
        )
        self._send(head_bytes(response.status, response.reason, headers))

    def send_head(self, response: ResponseHead, upstream: UpstreamProtocol | None) -> None:
        location = self._location
        headers = client_response_headers(
            response,
            request_method=self._head.method,  # type: ignore[union-attr]
            date=http_date(self._clock.seconds()),
            rules=location.response if location is not None else None,
            rv=self._rv,
        )
        status = self._status = response.status
        self._write_head(status, response.reason or reason_phrase(status).encode(), headers)
        if upstream is not None:
            self._response_throttle = Throttle(
                upstream.transport, self._clock, self._location.timeouts.client_send,  # type: ignore[union-attr]
                self._client_stalled,
            )
            self.transport.registerProducer(self._response_throttle, True)

    def _write_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        head = self._head
        plan = plan_response(
            status,
            reason,
            headers,
            request_method=head.method if head is not None else b"GET",
            client_version=head.http_version if head is not None else b"1.1",
            keep_alive=self._keepalive_allowed(),
        )
        self._plan = plan
        self._send(plan.head)

    def _keepalive_allowed(self) -> bool:
        """nginx's decision: the client asks, the limits allow, nothing forces a close."""
        head = self._head
        if self._close_after or head is None:
            return False
        limits = self._location.client if self._location is not None else self._limits
        if limits.keepalive_timeout <= 0 or self.requests >= limits.keepalive_requests:
            return False
        return client_wants_keepalive(head.http_version, head.values(b"connection"))

    def send_data(self, data: bytes) -> None:
        mode = self._plan.mode  # type: ignore[union-attr]
        if not data or mode is BodyMode.NONE:
            return
        self._body_bytes += len(data)
        if mode is BodyMode.CHUNKED:
            pieces = chunk(data)
            self._sent += len(pieces[0]) + len(data) + 2
            self.transport.writeSequence(pieces)
        else:
            self._send(data)

    def release_upstream(self) -> None:
        """
        The exchange takes its upstream connection back (to pool or close it).
        An answer still over the client's write buffer mark keeps its
        throttle (and send_timeout): as in nginx, the next request is read
        only once the client has read this one, so a client that pipelines
        and never reads cannot make us buffer an answer per request.
        """
        throttle = self._response_throttle
        if throttle is not None and throttle.paused:
            self._response_throttle = None
            self._backlog = throttle
            throttle.retarget(Drained(self._drained))
        self._unregister_all()

    def _drained(self) -> None:
        self._drop_backlog()
        if self._state is State.READING:
            self._resume()
            self._pump()

    def _drop_backlog(self) -> None:
        if self._backlog is not None:
            self._backlog.revoke()
            self._backlog = None
            self.transport.unregisterProducer()

    def end_response(self) -> None:
        if self._plan is not None and self._plan.mode is BodyMode.CHUNKED:
            self._send(LAST_CHUNK)
        self._exchange = None
        self._request_done()

    def abort_response(self) -> None:
        """The upstream broke off mid-body: close without a final chunk."""
        self._exchange = None
        self._unregister_all()
        self._log_request()
        self._close()

    def fail(self, status: int, detail: str, *, close: bool = False, note: str | None = None) -> None:
        """Answer with an error page, or cut the connection if it is too late."""
        self._exchange = None
        if self._plan is not None:
            self.abort_response()
            return
        self._close_after = self._close_after or close
        self._respond(status, [(b"Content-Type", b"text/html")], error_page(status, note))

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
        self._status = status
        self._write_head(status, reason_phrase(status).encode("ascii"), all_headers)
        if body and self._plan.mode is not BodyMode.NONE:  # type: ignore[union-attr]
            self._send(body)
            self._body_bytes += len(body)
        self._request_done()

    def switch(
        self,
        upstream: UpstreamProtocol,
        response: ResponseHead,
        early: bytes,
        on_end: Callable[[Tunnel], None],
    ) -> None:
        """A valid 101: send it on and join the two connections; ``on_end`` runs when the tunnel ends."""
        headers = client_response_headers(
            response,
            request_method=self._head.method,  # type: ignore[union-attr]
            date=http_date(self._clock.seconds()),
            rules=self._location.response,  # type: ignore[union-attr]
            rv=self._rv,
        )
        self._send(head_bytes(101, response.reason or b"Switching Protocols", headers))
        self._status = 101
        self._exchange = None
        self._tunnel_done = on_end
        self._state = State.TUNNEL
        self._paused = False
        tunnel = Tunnel(
            client=self.transport,
            upstream=upstream.transport,
            to_client=self._write,
            to_upstream=upstream.direct_write,
            clock=self._clock,
            timeouts=self._location.timeouts,  # type: ignore[union-attr]
            on_end=self._tunnel_ended,
            error_logs=self._location.error_logs,  # type: ignore[union-attr]
        )
        self._tunnel = tunnel
        self._factory.registry.stats.tunnel_opened()
        self.dataReceived = tunnel.from_client  # type: ignore[method-assign]
        upstream.become_tunnel(tunnel)
        client_early = self._gate.take_rest()  # type: ignore[union-attr]
        # Nothing is parsed any more: a long-lived tunnel keeps no parser
        # state, only the request's length for its log line.
        self._body = self._gate = None  # type: ignore[assignment]
        self._head.drop_index()  # type: ignore[union-attr]
        tunnel.start(client_early, early)

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
        plan = self._plan
        if plan is None or not plan.keep_alive or not self._request_read():
            self._close()
            return
        self._state = State.READING
        self._head = None
        self._plan = None
        limits = self._location.client if self._location is not None else self._limits
        self._idle_wait = not self._gate.pending  # type: ignore[union-attr]
        if self._idle_wait:
            self._timer = self._clock.callLater(limits.keepalive_timeout, self._head_timed_out)
        else:
            self._timer = self._clock.callLater(self._limits.header_timeout, self._head_timed_out)
        if self._backlog is not None:
            self._pause()
            return
        self._resume()
        self._pump()

    def _request_read(self) -> bool:
        """
        Whether the whole request has been read, so the next bytes are the
        next request.  An answer of our own (an error, a redirect) may come
        before the body was read: the request is read if what is held ends
        it without a byte of body (an empty or zero-length body); a body
        left unread means the connection cannot go on.
        """
        body = self._body
        if body is None or body.done:
            return True
        gate = self._gate
        try:
            rest = body.feed(gate.take_rest(), _unread)  # type: ignore[union-attr]
        except BodyError:
            return False
        if rest is None:
            return False
        gate.push(rest)  # type: ignore[union-attr]
        return True

    def _head_started(self) -> None:
        """The first byte of a kept-alive connection's next request: the head deadline starts."""
        self._idle_wait = False
        timer = self._timer
        if timer is not None and timer.active():
            timer.reset(self._limits.header_timeout)  # the keep-alive timer becomes the head's
        else:
            self._timer = self._clock.callLater(self._limits.header_timeout, self._head_timed_out)

    def _log_request(self) -> None:
        head = self._head
        location = self._location
        so_far = self._head_so_far
        if head is None:
            if so_far is None:
                return
            head = so_far.head
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
            request_length=self._fed if so_far is None else so_far.length,
            connection=self.serial,
            connection_requests=self.requests,
            close_reason=self._close_reason,
            request_line=None if so_far is None else so_far.line.decode("latin-1"),
        )
        write_entry(runtime.access_logs, runtime.config.log_formats, targets, entry)

    def _default_access_logs(self) -> tuple:
        """Requests refused or unmatched before a location log where the address's default server says."""
        return self._factory.binding(self.runtime, self.conn.server_addr).default.access_logs  # type: ignore[union-attr]

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
        self._write(data)

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()

    def _drop_exchange(self) -> None:
        """The request ends here: its exchange (if still running) is cancelled, the producers unregistered."""
        if self._exchange is not None:
            exchange, self._exchange = self._exchange, None
            exchange.cancel()
        self._unregister_all()

    def _unregister_all(self) -> None:
        """Drop the producer registrations this protocol made (it owns them) and the body's timer."""
        self._stop_body_timer()
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
        self._drop_exchange()
        self._log_request()
        self._state = State.CLOSED
        self.transport.abortConnection()

    def _head_timed_out(self) -> None:
        self._timer = None
        self.log.info("client {client} timed out waiting for a request", client=self.peer_text)
        self._log_unfinished_head(408, since=self._clock.seconds() - self._limits.header_timeout)
        self._close()

    def _log_unfinished_head(self, status: int, since: float | None = None) -> None:
        """
        A head the client never finished is logged as nginx logs it, with
        nothing sent: 408 at the header deadline, 400 when the client
        leaves; an idle connection (nothing received) is not a request.
        """
        if self._state is not State.READING or self._gate is None:
            return
        so_far = head_so_far(self._gate.held, buffer_size=self._limits.header_buffer_size)
        if so_far is None:
            return
        self._new_request()
        self._head_so_far = so_far
        if since is not None:
            self._started = since
        self._status = status
        self._log_request()

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
        self._drop_backlog()
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
        self.proxy_header_known(conn)
        if rest:
            self.dataReceived(rest)

    def proxy_header_known(self, conn: ConnInfo) -> None:
        """The PROXY header's addresses, read here or, on a TLS socket, before TLS."""
        self.conn = conn

    def proxy_header_failed(self) -> None:
        self._state = State.CLOSED
        self._cancel_timer()
        self.transport.abortConnection()

    @property
    def activity(self) -> str:
        """stub_status's view: reading a request head, writing (busy), or waiting (idle)."""
        if self._state is State.READING:
            return "reading" if self._gate.pending else "waiting"  # type: ignore[union-attr]
        return "writing"

    @property
    def tunnel_bytes(self) -> tuple[int, int] | None:
        tunnel = self._tunnel
        if tunnel is None or self._state is State.CLOSED:
            return None
        return tunnel.client_bytes, tunnel.upstream_bytes

    def drain(self) -> None:
        """
        Graceful shutdown begins: a connection between requests (idle, or
        with a head not yet complete) closes now, a busy one after its response.
        """
        self._close_after = True
        if self._state is State.READING:
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


def _tls_standing(transport: ITransport, conn: ConnInfo) -> TLSInfo | RequestError | None:
    """What :func:`~wstunnel.core.dispatch.prepare` needs of a TLS connection; None for plain TCP."""
    if conn.scheme != "https":
        return None
    if transport.plain:  # type: ignore[attr-defined]
        return RequestError(400, "client sent plain HTTP request to HTTPS port", PLAIN_HTTP_NOTE)
    return conn.tls if conn.tls is not None else session_info(transport)  # type: ignore[arg-type]


def _body_reader(head: RequestHead, limits: HeadLimits) -> LengthBody | ChunkedBody:
    """The request body's reader; a chunk-size line or the trailers may be as long as a whole head and 1 KiB."""
    framing = body_framing(head)
    if framing is BodyFraming.CHUNKED:
        return ChunkedBody(limits.total + 1024)
    return LengthBody(0 if framing is BodyFraming.NONE else framing)  # type: ignore[arg-type]


def _expects_continue(head: RequestHead) -> bool:
    """An HTTP/1.1 client waiting for ``100 Continue`` (HTTP/1.0 expectations are ignored, RFC 9110 10.1.1)."""
    if head.http_version != b"1.1":
        return False
    return b"100-continue" in lower_tokens(head.values(b"expect"))


def _unread(data: bytes) -> None:
    """The sink of a body nobody asked for: a byte of it means the request was not read."""
    raise BodyError("request body left unread")


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

