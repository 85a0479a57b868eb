"""
The client side: one Protocol per accepted connection.

Each request head is checked and parsed by :mod:`wstunnel.wire.heads` (limits,
strict syntax, unambiguous framing) and its body read by a reader of
:mod:`wstunnel.wire.bodies`.  The request's fate is one value from
:func:`wstunnel.core.dispatch.prepare`; a request to forward is handed to an
:class:`~wstunnel.net.exchange.Exchange`, its body streamed by an
:class:`~wstunnel.net.upload.Upload`; what the exchange reports is written
back by the :class:`~wstunnel.net.answer.AnswerWriter`; after a valid 101 the
connection becomes a tunnel.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTCP,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from wstunnel.config.model import Binding, ClientLimits, ErrorLog, Server
from wstunnel.net.answer import AnswerWriter
from wstunnel.net.clientstate import State
from wstunnel.net.exchange import Exchange
from wstunnel.net.intake import Intake
from wstunnel.net.proxying import Proxying
from wstunnel.net.registry import Registry
from wstunnel.net.requestlog import RequestRecord, log_request
from wstunnel.net.runtime import Runtime
from wstunnel.net.throttle import arm_abort
from wstunnel.net.tunnel import Tunnel, TunnelEnd
from wstunnel.net.upload import LARGEST_PIECE, Upload, body_reader
from wstunnel.obs.logs import ScopedLogger
from wstunnel.wire.bodies import BodyError, ChunkedBody, LengthBody
from wstunnel.wire.errors import RequestError
from wstunnel.wire.heads import Http2Preface, check_request_head, head_so_far
from wstunnel.net.proxyfirst import ProxyPreamble
from wstunnel.wire.proxyproto import is_trusted
from wstunnel.wire.request import ConnInfo, RequestHead

__all__ = ["ClientProtocol", "ProxyFactory", "H2_REFUSAL"]

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


@implementer(IHalfCloseableProtocol)
class ClientProtocol(Proxying, Protocol):
    """
    One client connection.

    ``_state`` is a :class:`~wstunnel.net.clientstate.State`.  In
    ``READING`` bytes collect in the :class:`~wstunnel.net.intake.Intake`'s
    head gate until a whole head is there.  In ``PROXYING`` bytes collect
    in the gate too and go to the request's :class:`~wstunnel.net.upload.Upload`
    only while the body streams upstream; what follows the body stays in
    the gate for the next head or the tunnel.  Before the upstream is
    connected and after the body ended the transport is read only up to
    ``EARLY_DATA_LIMIT``.  In ``TUNNEL`` ``dataReceived`` is the tunnel's
    own method and nothing here runs per chunk.

    This class owns the connection; what a request does once routed (and
    every call the Exchange makes) is its base
    :class:`~wstunnel.net.proxying.Proxying`.  What one request did is its
    :class:`~wstunnel.net.requestlog.RequestRecord` (``_req``, kept after
    the request until the next one starts: its location scopes the
    connection's messages meanwhile); what is written back goes through
    the :class:`~wstunnel.net.answer.AnswerWriter`.
    """

    log = ScopedLogger()
    # A connection's own state lives in slots, not in instance dict
    # entries, to keep what each connection costs small (doc/performance.md).
    # ``dataReceived`` is rebound per instance (PROXY header, tunnel) and
    # lives in the instance dict Protocol still has.
    __slots__ = (
        "_abort", "_answer", "_clock", "_exchange", "_factory", "_in_pump", "_intake", "_req", "_state",
        "_tunnel", "_tunnel_done", "_upload", "conn", "peer_text", "requests", "runtime", "serial",
    )
    _answer: AnswerWriter  # from connectionMade, which has the transport

    def __init__(self, factory: "ProxyFactory") -> None:
        self._factory = factory
        self._clock = factory.clock
        self._state = State.READING
        self._intake: Intake | None = None  # from admission; None once a tunnel: it keeps no parser state
        self._req = RequestRecord(started=0.0)
        self._upload: Upload | None = None  # the running request's body
        self._exchange: Exchange | None = None
        self._tunnel: Tunnel | None = None
        self._tunnel_done: Callable[[Tunnel], None] | None = None
        self._abort: IDelayedCall | None = None
        self._in_pump = False
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
        self._answer = AnswerWriter(self.transport, self._clock, self._req)
        self.serial = self._factory.registry.admit(self, self.runtime.config.workers.connections)
        if not self.serial:
            return
        binding = self._factory.binding(self.runtime, local.host)
        # Before the head is read the virtual server is unknown: the
        # address's default server sets the head limits, as in nginx.
        self._intake = Intake(self.transport, self._clock, binding.default.client, self._head_timed_out)
        if binding.proxy_protocol and not binding.ssl:
            # On a TLS socket the header precedes TLS: wstunnel.net.proxyfirst reads it.
            self._expect_proxy_header(binding)

    def dataReceived(self, data: bytes) -> None:
        state = self._state
        if state is State.READING:
            self._factory.registry.busy(self)
            self._intake.push(data)  # type: ignore[union-attr]
            self._pump()
            return
        if state is State.CLOSED:
            return
        intake, upload = self._intake, self._upload
        assert intake is not None
        if upload is None or upload.to is None:
            intake.hold(data)
            return
        intake.gate.push(data)
        upload.read()
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
        if self._req.gate is not None:
            self._req.gate.release()
        self._state = State.CLOSED
        self._stop_deadline()
        self._release()

    def _client_gone(self) -> None:
        """The client left while its request was at the upstream (nginx's 499)."""
        if self._exchange is not None and self._state is State.PROXYING:
            exchange, self._exchange = self._exchange, None
            exchange.cancel()
            self._unregister_all()
            if self._req.status == 0:
                self._req.status = 499
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
        if self._intake is not None:
            self._intake.settle(serving=self._state is State.PROXYING)

    def _pull_events(self) -> None:
        while True:
            if self._state is State.READING:
                if not self._next_head():
                    return
                continue
            upload = self._upload
            if upload is None or upload.to is None or not self._read_body(upload):
                return

    def _read_body(self, upload: Upload) -> bool:
        """The held bytes to the upload; True once the body has ended (what follows stays held)."""
        intake = self._intake
        assert intake is not None
        try:
            if not upload.pull(intake.gate, self._req):
                return False
        except BodyError as e:
            self._body_error(400, str(e))
            return False
        except RequestError as e:
            self._body_error(e.status, e.detail)
            return False
        if self._exchange is not None:
            self._exchange.request_sent()
        return True

    def _next_head(self) -> bool:
        """Take the next head from the gate; False when there is none (yet)."""
        intake = self._intake
        assert intake is not None
        gate = intake.gate
        raw = None
        try:
            raw = gate.feed(b"")
            if raw is None:
                if not gate.pending and not self._answer.held:
                    self._factory.registry.idle(self)
                return False
            head = check_request_head(raw, gate.limits)
        except Http2Preface:
            self.log.info("client {client} sent an HTTP/2 preface", client=self.peer_text)
            self.transport.write(H2_REFUSAL)
            self._close()
            return False
        except RequestError as e:
            self._refuse(e, gate.held if raw is None else raw, intake.limits.header_buffer_size)
            return self._state is State.READING
        self._begin(head, len(raw), body_reader(head, gate.limits))
        return True

    def _refuse(self, error: RequestError, received: bytes, buffer_size: int) -> None:
        """A head refused before routing: answered, logged as far as it was read, closed."""
        self.log.info("client {client} sent an invalid request: {error}", client=self.peer_text, error=str(error))
        self._new_request()
        self._req.so_far = head_so_far(received, buffer_size=buffer_size, too_long=error.status == 414)
        self._state = State.PROXYING
        self.fail(error.status, error.detail, close=True)

    def _body_error(self, status: int, detail: str) -> None:
        """The body broke its framing or the size limit mid-way: the exchange is off."""
        self.log.info("client {client}: {detail}", client=self.peer_text, detail=detail)
        self._drop_exchange()
        self.fail(status, detail, close=True)

    def _begin(self, head: RequestHead, length: int, body: LengthBody | ChunkedBody) -> None:
        intake = self._intake
        assert intake is not None
        intake.serve()
        self._new_request()
        self._req.head = head
        self._req.fed = length
        self._upload = Upload(body)
        self._state = State.PROXYING
        self._route(head)

    def _new_request(self) -> None:
        """A request starts: counted, timed, and nothing of the previous one kept."""
        self.requests += 1
        self._factory.registry.stats.request_started()
        self._req = record = RequestRecord(started=self._clock.seconds())
        self._answer.begin(record)
        self._upload = None

    # After a response.

    def _request_done(self) -> None:
        self._unregister_all()
        self._log_request()
        plan = self._answer.plan
        if plan is None or not plan.keep_alive or not self._request_read():
            self._close()
            return
        self._state = State.READING
        self._req.head = None
        self._answer.plan = None
        intake = self._intake
        assert intake is not None
        intake.await_next(self._client_limits().keepalive_timeout)
        if self._answer.held:
            intake.pause()
            return
        intake.resume()
        self._pump()

    def _request_read(self) -> bool:
        """
        Whether the whole request has been read, so the next bytes are the
        next request.  An answer of our own (an error, a redirect) may come
        before the body was read: the request is read if what is held ends
        it without a byte of body (an empty or zero-length body); a body
        left unread means the connection cannot go on.
        """
        upload, intake = self._upload, self._intake
        if upload is None or upload.reader.done:
            return True
        assert intake is not None
        gate = intake.gate
        held = gate.peek(LARGEST_PIECE)
        rest = upload.unread(held)
        if rest is None:
            return False
        gate.drop(len(held) - len(rest))
        return True

    def _log_request(self) -> None:
        conn = self.conn
        assert conn is not None
        if self._req.gate is not None:
            self._req.gate.release()
        log_request(
            self._req,
            runtime=self.runtime,
            conn=conn,
            default=self._default_server,
            stats=self._factory.registry.stats,
            now=self._clock.seconds,
            connection=self.serial,
            requests=self.requests,
        )

    def _default_server(self) -> Server:
        """The default server of the address the connection arrived on."""
        assert self.conn is not None
        return self._factory.binding(self.runtime, self.conn.server_addr).default

    # Helpers.

    @property
    def error_logs(self) -> tuple[ErrorLog, ...]:
        """
        Where this connection's messages go (ScopedLogger): its request's
        location's error_logs, else those of the default server of the
        address it arrived on, as nginx logs a connection's messages.
        """
        if self._req.location is not None:
            return self._req.location.error_logs
        if self.conn is None:
            return self.runtime.config.error_logs
        return self._default_server().error_logs

    def _client_limits(self) -> ClientLimits:
        """The request's location's limits; before a location, those of the address's default server."""
        location, intake = self._req.location, self._intake
        if location is not None:
            return location.client
        assert intake is not None
        return intake.limits

    def _resume(self) -> None:
        if self._intake is not None:
            self._intake.resume()

    def _drop_exchange(self) -> None:
        """The request ends here: its exchange (if still running) is cancelled, the producers unregistered."""
        if self._exchange is not None:
            exchange, self._exchange = self._exchange, None
            exchange.cancel()
        self._unregister_all()

    def _unregister_all(self) -> None:
        """Drop the producer registrations this protocol made (it owns them) and the body's timer."""
        upload = self._upload
        if upload is not None and upload.to is not None:  # else nothing of it is registered
            upload.stop()
        self._answer.stop()
        if self._req.pace is not None:
            self._req.pace.stop()

    def _head_timed_out(self) -> None:
        intake = self._intake
        assert intake is not None
        intake.expired()
        self.log.info("client {client} timed out waiting for a request", client=self.peer_text)
        self._log_unfinished_head(408, since=self._clock.seconds() - intake.limits.header_timeout)
        self._close()

    def _log_unfinished_head(self, status: int, since: float | None = None) -> None:
        """
        A head the client never finished is logged as nginx logs it, with
        nothing sent: 408 at the header deadline, 400 when the client
        leaves; an idle connection (nothing received) is not a request.
        """
        intake = self._intake
        if self._state is not State.READING or intake is None:
            return
        so_far = head_so_far(intake.gate.held, buffer_size=intake.limits.header_buffer_size)
        if so_far is None:
            return
        self._new_request()
        req = self._req
        req.so_far = so_far
        if since is not None:
            req.started = since
        req.status = status
        self._log_request()

    def _stop_deadline(self) -> None:
        if self._intake is not None:
            self._intake.stop_deadline()

    def _release(self) -> None:
        """Nothing more is read: the bytes held for later requests are given back."""
        if self._intake is not None:
            self._intake.release()

    def _close(self) -> None:
        if self._state is State.CLOSED and self._abort is not None:
            return
        self._state = State.CLOSED
        self._factory.registry.busy(self)
        self._stop_deadline()
        self._release()
        self._unregister_all()
        self._answer.drop_backlog()
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
        self._factory.registry.busy(self)
        self._stop_deadline()
        self.transport.abortConnection()

    @property
    def activity(self) -> str:
        """stub_status's view: reading a request head, writing (busy), or waiting (idle)."""
        if self._state is State.READING:
            return "reading" if self._intake is not None and self._intake.gate.pending else "waiting"
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
        self._req.close_after = True
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
        self._stop_deadline()
        self.transport.abortConnection()


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

