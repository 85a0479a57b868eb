"""
A client connection's side of a request that goes somewhere: the decision
of :func:`wstunnel.core.dispatch.prepare` acted on, and every call the
:class:`~wstunnel.net.exchange.Exchange` makes on the client (the body to
stream, the answer's head and body, the error page, the 101 and the
tunnel), under their names.

:class:`Proxying` is a base of :class:`~wstunnel.net.client.ClientProtocol`,
which owns the connection (its bytes, its states, keep-alive and closing);
the attributes and methods declared here without a body are the
protocol's.  The work itself is done by the request's
:class:`~wstunnel.net.upload.Upload`, the connection's
:class:`~wstunnel.net.answer.AnswerWriter` and the request's
:class:`~wstunnel.net.requestlog.RequestRecord`.
"""

from __future__ import annotations

import os
import typing
from typing import TYPE_CHECKING, Callable

from twisted.internet.interfaces import IReactorTCP, IReactorTime, ITransport
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from wstunnel.balancing.balancer import request_key
from wstunnel.config.model import Binding, ClientLimits, RateLimits
from wstunnel.wire.request import TLSInfo
from wstunnel.core.dispatch import Authorize, Close, Decision, Forward, Phases, Respond, ServeFile, StatusPage, prepare
from wstunnel.core.files import page_reply
from wstunnel.core.errorpages import Redo, answered_status, error_answer, intercepts, replaceable, unrouted_vars
from wstunnel.net.answer import CONTINUE, AnswerWriter
from wstunnel.net.authrequest import authorize
from wstunnel.net.clientstate import State
from wstunnel.net.exchange import Exchange, Phase
from wstunnel.net.files import file_test
from wstunnel.net.gate import Gate
from wstunnel.net.pace import client_rate, response_pace, tunnel_type
from wstunnel.net.fileserve import FileSender, direct_sendfile, open_static, reply_for
from wstunnel.net.intake import Intake
from wstunnel.net.registry import Registry
from wstunnel.net.requestlog import RequestRecord
from wstunnel.net.runtime import Runtime
from wstunnel.net.tls import PLAIN_HTTP_NOTE, session_info
from wstunnel.net.tunnel import Tunnel, TunnelEnd
from wstunnel.net.upload import Upload, expects_continue
from wstunnel.net.upstream import UpstreamProtocol
from wstunnel.obs.logs import ScopedLogger
from wstunnel.obs.metrics import status_page
from wstunnel.wire.errors import RequestError, error_page
from wstunnel.wire.framing import BodyMode, client_wants_keepalive
from wstunnel.wire.request import ConnInfo, RequestHead
from wstunnel.wire.response import ResponseHead

__all__ = ["Proxying"]

# nginx closes the connection after these answers of its own.
_CLOSING_STATUSES = frozenset({400, 408, 413, 414, 431, 500, 501, 505})


class _Factory(typing.Protocol):
    """What the request side reads of the connection's factory."""

    registry: Registry
    reactor: IReactorTCP

    def binding(self, runtime: Runtime, local_host: str) -> Binding: ...


# How loudly a refusal is logged (RequestError.level).
_LOG_LEVELS = {"info": LogLevel.info, "error": LogLevel.error}

# The decisions limit_req and limit_conn apply to (nginx's pre-access phase comes before them all).
_GATED = (Forward, StatusPage, Authorize, ServeFile)


class Proxying:
    """The request half of a client connection; see the module's docstring."""

    __slots__ = ()

    if TYPE_CHECKING:
        log: ScopedLogger
        transport: ITransport
        runtime: Runtime
        conn: ConnInfo | None
        peer_text: str
        requests: int
        dataReceived: Callable[[bytes], None]
        _clock: IReactorTime
        _state: State
        _req: RequestRecord
        _answer: AnswerWriter
        _upload: Upload | None
        _intake: Intake | None
        _exchange: Exchange | None
        _tunnel: Tunnel | None
        _tunnel_done: Callable[[Tunnel], None] | None
        _factory: _Factory

        def _pump(self) -> None: ...
        def _resume(self) -> None: ...
        def _request_done(self) -> None: ...
        def _client_limits(self) -> ClientLimits: ...
        def _drop_exchange(self) -> None: ...
        def _unregister_all(self) -> None: ...
        def _log_request(self) -> None: ...
        def _close(self) -> None: ...
        def _stop_deadline(self) -> None: ...

    def _route(self, head: RequestHead) -> None:
        runtime = self.runtime
        conn = self.conn
        assert conn is not None
        decision = prepare(
            config=runtime.config,
            router=runtime.router,
            binding=self._factory.binding(runtime, conn.server_addr),
            conn=conn,
            tls=None if conn.scheme != "https" else _tls_standing(self.transport, conn),
            head=head,
            pooled=runtime.pools,
            plans=runtime.plan,
            files=file_test,
            notice=self._rewrite_notice,
            users=runtime.users.table,
        )
        self._take(decision)
        location = decision.location
        limits = location.limits if location is not None and isinstance(decision, _GATED) else None
        if limits is not None and limits.checked:
            self._gated(decision, limits)  # type: ignore[arg-type]
        else:
            self._act(decision)

    def _take(self, decision: Decision) -> None:
        """The request's connection values, location and variables as the decision left them."""
        self.conn = decision.conn
        self._req.location = decision.location
        self._req.vars = decision.vars

    def _gated(self, decision: Forward | StatusPage | Authorize | ServeFile, limits: RateLimits) -> None:
        """
        The location's limit_req and limit_conn, nginx's pre-access phase:
        before the access phase's auth subrequest; a request they delay
        reads nothing meanwhile.
        """
        assert decision.vars is not None and self._intake is not None
        self._req.gate = gate = Gate(
            limits, decision.vars, self.runtime.limit_tables, self._clock, self.log, decision.conn.remote_addr
        )
        gate.run(lambda: self._act(decision), lambda status: self.fail(status, "limited"))
        if gate.waiting:
            self._intake.pause()

    def _act(self, decision: Decision) -> None:
        if isinstance(decision, Forward):
            self._forward(decision)
        elif isinstance(decision, Respond):
            if replaceable(decision) and self._error_page(decision.status, decision.headers):
                return
            self._respond(decision.status, list(decision.headers), decision.body)
        elif isinstance(decision, Close):
            self._req.status = 444
            self._log_request()
            self._close()
        elif isinstance(decision, ServeFile):
            self._serve_file(decision)
        elif isinstance(decision, StatusPage):
            self._respond(200, *status_page(decision.location.status_page, self._factory.registry.stats))
        elif isinstance(decision, Authorize):
            self._authorize(decision)
        else:
            error = decision.error
            if error.level:
                self.log.emit(_LOG_LEVELS[error.level], "request from {client} refused: {error}",
                              client=self.peer_text, error=str(error))
            self.fail(error.status, error.detail, close=error.status in _CLOSING_STATUSES, note=error.note)

    def _rewrite_notice(self, text: str) -> None:
        """A ``rewrite_log`` line, at nginx's notice level (twisted.logger's info)."""
        self.log.info("{text}", text=text)

    def _authorize(self, decision: Authorize) -> None:
        """auth_request: nothing more is read from the client until the subrequest has answered."""
        intake = self._intake
        assert intake is not None
        intake.pause()
        waiting = authorize(
            decision,
            self._authorized,
            peer_text=self.peer_text,
            runtime=self.runtime,
            reactor=self._factory.reactor,
            clock=self._clock,
            stats=self._factory.registry.stats,
        )
        if waiting is not None:
            self._exchange = waiting

    def _authorized(self, decision: Decision) -> None:
        self._exchange = None
        self._resume()
        self._take(decision)
        self._act(decision)

    def _serve_file(self, serve: ServeFile) -> None:
        """A file from disk, read as the client drains it (:mod:`wstunnel.net.fileserve`)."""
        head, location = self._req.head, serve.location
        files = serve.vars.server.files if location is None else location.files
        assert head is not None and files is not None
        try:
            opened = open_static(head, location, serve.path)
        except RequestError as error:
            self.log.info("request from {client} refused: {error}", client=self.peer_text, error=str(error))
            self.fail(error.status, error.detail)
            return
        fd = opened.fd
        try:
            reply = page_reply(serve, head, lambda asked: reply_for(asked, files, serve.path, opened, location))
            plan = None if reply.status >= 400 and not reply.parts else self._answer.file_head(
                reply.status, reply.headers, self._keepalive_allowed()
            )
        except BaseException:
            os.close(fd)
            raise
        if plan is None:
            os.close(fd)
            self._respond(reply.status, [(b"Content-Type", b"text/html"), *reply.headers], error_page(reply.status))
            return
        if plan.mode is BodyMode.NONE:
            os.close(fd)
            self._request_done()
            return
        direct = None if self._answer.compressing else direct_sendfile(self.transport)
        rate = (0, 0) if location is None else client_rate(location, serve.vars)
        FileSender(fd, reply, self._answer.queue, self.transport, self._clock, files.send_timeout, self._file_sent,
                   self._client_stalled, direct, self._file_bytes, rate).start()

    def _file_bytes(self, count: int) -> None:
        """Bytes the kernel sent from the file by sendfile, counted as if written."""
        record = self._answer.record
        record.sent += count
        record.body_bytes += count

    def _file_sent(self, whole: bool) -> None:
        if whole:
            self._answer.end()
            self._request_done()
            return
        if self._state is State.CLOSED:
            return
        self.log.info("file not sent whole to client {client}: truncated, unreadable or the client left",
                      client=self.peer_text)
        self._log_request()
        self._state = State.CLOSED
        self._stop_deadline()
        self.transport.abortConnection()

    def _forward(self, forward: Forward) -> None:
        req, upload, intake = self._req, self._upload, self._intake
        assert upload is not None and intake is not None and forward.location.proxy_pass is not None
        upload.limit(forward.body_limit)
        req.close_after = req.close_after or forward.close_after
        location = forward.location
        proxy_pass = location.proxy_pass
        upstream = proxy_pass.upstream
        reactor = self._factory.reactor
        forwarding = self.runtime.forwarding(location)
        make = Exchange if proxy_pass.authority is None else self.runtime.dynamic(forward.vars, reactor)
        self._exchange = exchange = make(
            client=self,
            head=req.head,
            request=forward.request,
            location=location,
            balancer=forwarding.balancer,
            key=request_key(upstream, forward.vars),
            connect=forwarding.connect(reactor, self._clock),
            clock=self._clock,
            has_body=forward.has_body,
            stats=self._factory.registry.stats,
            pool=forwarding.pool,
        )
        req.upstream = exchange.record
        exchange.start()
        if exchange.phase is Phase.CONNECTING:
            # Nothing is read until there is somewhere to send it.  A pooled
            # connection has taken the request already: no pause and resume.
            intake.pause()

    # Called by the exchange.

    def stream_body(self, upstream: UpstreamProtocol) -> None:
        """The upstream has the request head: let the body flow to it."""
        upload, req, exchange = self._upload, self._req, self._exchange
        assert upload is not None and req.head is not None and req.location is not None and exchange is not None
        if upload.complete:
            # A retry of a request whose (empty) body was already read.
            upstream.end_body()
            exchange.request_sent()
            return
        if not upload.continued and expects_continue(req.head):
            # Answered here, never forwarded (Expect is not sent upstream).
            upload.continued = True
            self._answer.send(CONTINUE)
        intake = self._intake
        assert intake is not None
        upload.start(upstream, intake, self._clock, req.location, self._body_timed_out, self._body_stalled)
        self._resume()
        self._pump()

    def _body_timed_out(self) -> None:
        """client_body_timeout: as in nginx, no answer and a close; 408 in the log if nothing was sent."""
        if self._upload is not None:
            self._upload.timed_out()
        self.log.info("client {client} timed out sending the request body", client=self.peer_text)
        self._drop_exchange()
        if self._answer.plan is None:
            self._req.status = 408
        self._log_request()
        self._close()

    def _body_stalled(self) -> None:
        self.log.info("upstream did not read the request body in time, client: {client}",
                      client=self.peer_text)
        if self._exchange is not None:
            self._exchange.upstream_lost(Failure(TimeoutError("proxy_send_timeout")))

    def may_retry(self) -> bool:
        """A retry is safe only while the client has seen nothing."""
        upload = self._upload
        return self._answer.plan is None and (upload is None or upload.to is None)

    def send_informational(self, response: ResponseHead) -> None:
        """1xx other than 100 (which we answer ourselves) go on to HTTP/1.1 clients."""
        head = self._req.head
        if head is None or head.http_version != b"1.1" or response.status == 100:
            return
        self._answer.informational(response, head.method)

    def send_head(self, response: ResponseHead, upstream: UpstreamProtocol | None) -> None:
        req = self._req
        location = req.location
        # Error pages and limit_rate need not be asked about where the location has neither.
        plain = location is not None and location.relays_plainly
        if not plain and intercepts(req.vars, response.status):
            self._drop_exchange()
            self._error_page(response.status)
            return
        response = answered_status(req.vars, response)
        self._answer.relay(response, self._keepalive_allowed())
        if upstream is not None:
            assert location is not None and req.vars is not None
            source = upstream.transport
            if not plain:
                req.pace = pace = response_pace(location, req.vars, source, self._clock)
                source = source if pace is None else pace
            self._answer.follow(source, location.timeouts.client_send, self._client_stalled)

    def _keepalive_allowed(self) -> bool:
        """nginx's decision: the client asks, the limits allow, nothing forces a close."""
        req = self._req
        head = req.head
        if req.close_after or head is None:
            return False
        limits = self._client_limits()
        if limits.keepalive_timeout <= 0 or self.requests >= limits.keepalive_requests:
            return False
        return client_wants_keepalive(head.http_version, head.values(b"connection"))

    def send_data(self, data: bytes) -> None:
        pace = self._req.pace
        self._answer.data(data)
        if pace is not None:
            pace.sent(len(data))

    def release_upstream(self) -> None:
        """The exchange takes its upstream connection back (to pool or close it)."""
        self._answer.release(self._drained)
        self._unregister_all()

    def _drained(self) -> None:
        self._answer.drop_backlog()
        if self._state is State.READING:
            self._resume()
            self._pump()

    def end_response(self) -> None:
        self._answer.end()
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
        if self._answer.plan is not None:
            self.abort_response()
            return
        self._req.close_after = self._req.close_after or close
        # nginx's code for plain HTTP on the TLS port, which its error_page names.
        if self._error_page(497 if note is PLAIN_HTTP_NOTE else status):
            return
        self._respond(status, [(b"Content-Type", b"text/html")], error_page(status, note))

    def _error_page(self, status: int, replaced: tuple[tuple[bytes, bytes], ...] = ()) -> bool:
        """error_page: the page's answer instead of the error ``status`` (``replaced``: its headers), if one applies."""
        runtime, conn, upload = self.runtime, self.conn, self._upload
        assert conn is not None
        binding = self._factory.binding(runtime, conn.server_addr)
        rv = self._req.vars or unrouted_vars(runtime.config, runtime.router, binding, conn, self._req.head)
        phases = Phases(runtime.router, runtime.pools, runtime.plan, file_test, self._rewrite_notice, runtime.users.table)
        redo = Redo(runtime.config, binding, phases)
        decision = error_answer(status, rv, redo, replaced)
        if decision is None:
            return False
        self._unregister_all()
        if upload is not None:
            # The page's request goes without the body (see core/errorpages).
            upload.complete = True
        self._take(decision)
        self._act(decision)
        return True

    def _respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A response wstunnel makes itself (errors, redirects, status pages)."""
        self._answer.own(status, headers, body, self._keepalive_allowed())
        self._request_done()

    def switch(
        self,
        upstream: UpstreamProtocol,
        response: ResponseHead,
        early: bytes,
        on_end: Callable[[Tunnel], None],
    ) -> None:
        """A valid 101: send it on and join the two connections; ``on_end`` runs when the tunnel ends."""
        req, intake = self._req, self._intake
        assert req.head is not None and req.location is not None and intake is not None
        self._answer.switching(response)
        self._exchange = None
        self._tunnel_done = on_end
        self._state = State.TUNNEL
        tunnel = tunnel_type(req.location)(
            client=self.transport,
            upstream=upstream.transport,
            to_client=self._answer.write,
            to_upstream=upstream.direct_write,
            clock=self._clock,
            timeouts=req.location.timeouts,
            on_end=self._tunnel_ended,
            error_logs=req.location.error_logs,
        )
        self._tunnel = tunnel
        self._factory.registry.stats.tunnel_opened()
        self.dataReceived = tunnel.from_client  # type: ignore[method-assign]
        upstream.become_tunnel(tunnel)
        intake.stop_deadline()
        client_early = intake.gate.take_rest()
        # Nothing is parsed any more: a long-lived tunnel keeps no parser
        # state, only the request's length for its log line.  Pausing and
        # resuming the client is the tunnel's business from here.
        self._upload = self._intake = None
        req.head.drop_index()
        tunnel.start(client_early, early)

    def _tunnel_ended(self, tunnel: Tunnel) -> None:
        req = self._req
        req.close_reason = reason = (tunnel.reason or TunnelEnd.CLIENT_CLOSED).name.lower()
        self._factory.registry.stats.tunnel_closed(
            reason,
            self._clock.seconds() - req.started,
            tunnel.client_bytes,
            tunnel.upstream_bytes,
        )
        if self._tunnel_done is not None:
            self._tunnel_done(tunnel)
        req.body_bytes = tunnel.upstream_bytes
        req.sent += tunnel.upstream_bytes
        self._log_request()
        self._state = State.CLOSED

    def _client_stalled(self) -> None:
        self.log.info("client {client} did not read the response in time", client=self.peer_text)
        self._drop_exchange()
        self._log_request()
        self._state = State.CLOSED
        self._stop_deadline()
        self.transport.abortConnection()


def _tls_standing(transport: ITransport, conn: ConnInfo) -> TLSInfo | RequestError | None:
    """What :func:`~wstunnel.core.dispatch.prepare` needs of a TLS connection; None for plain TCP."""
    if conn.scheme != "https":
        return None
    if transport.plain:  # type: ignore[attr-defined]
        return RequestError(400, "client sent plain HTTP request to HTTPS port", PLAIN_HTTP_NOTE)
    return conn.tls if conn.tls is not None else session_info(transport)  # type: ignore[arg-type]
