"""
One request's trip to an upstream and back.

The exchange asks the upstream's balancer for a peer, connects under
``proxy_connect_timeout``, lets the client side stream the request body,
waits for the response head under ``proxy_read_timeout``, and relays the
answer.  When an attempt fails it applies ``proxy_next_upstream``
(:mod:`wstunnel.balancing.retry`): another peer while nothing has reached the client
and the request can be sent again, else an error page.  An upgrade is
retried like a GET until a 101 has been relayed.  Each attempt is counted
open on its peer until its connection ends, for a tunnel when the tunnel
ends, and is written to the request's :class:`UpstreamRecord`.  A 101 is
checked before a tunnel may open; any other 101 is a 502.
"""

from __future__ import annotations

from enum import Enum
from typing import Callable, Protocol

from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from wstunnel.core.attempts import Attempt, UpstreamRecord
from wstunnel.balancing.balancer import Balancer
from wstunnel.core.headers import check_switch
from wstunnel.wire.upstream import UpstreamRequest
from wstunnel.obs.logs import ScopedLogger
from wstunnel.obs.metrics import Stats
from wstunnel.config.model import Location
from wstunnel.balancing.peers import PeerState
from wstunnel.net.throttle import moved_timer
from wstunnel.net.pool import IdlePool
from wstunnel.wire.request import RequestHead
from wstunnel.wire.response import ResponseHead
from wstunnel.balancing.retry import Retries, client_status, counts_as_failure, status_condition
from wstunnel.net.tunnel import Tunnel
from wstunnel.net.upstream import Connect, Connecting, UpstreamProtocol, UpstreamTLSError

__all__ = ["ClientSide", "Exchange", "Phase"]


class ClientSide(Protocol):
    """
    What the exchange tells the client side (the client protocol), which
    owns the client connection and everything written to it.
    """

    peer_text: str  # the client's address, for error messages

    def stream_body(self, upstream: UpstreamProtocol) -> None:
        """The upstream has the request head: let the body flow to it, then call ``request_sent``."""

    def may_retry(self) -> bool:
        """Whether the client has seen nothing yet, so another peer may be tried."""

    def send_informational(self, response: ResponseHead) -> None: ...
    def send_head(self, response: ResponseHead, upstream: UpstreamProtocol | None) -> None: ...
    def send_data(self, data: bytes) -> None: ...

    def release_upstream(self) -> None:
        """The answer is complete: the upstream connection is taken back (pooled or closed)."""

    def end_response(self) -> None: ...

    def abort_response(self) -> None:
        """The upstream broke off after the head: close the client connection without a proper end."""

    def fail(self, status: int, detail: str, *, close: bool = False) -> None:
        """No answer from any peer: an error page (``close``: and no keep-alive)."""

    def switch(
        self, upstream: UpstreamProtocol, response: ResponseHead, early: bytes, on_end: Callable[[Tunnel], None]
    ) -> None:
        """A valid 101: relay it and join both connections; ``on_end`` runs when the tunnel ends."""


class Phase(Enum):
    CONNECTING = "connecting to upstream"
    SENDING = "sending request to upstream"
    AWAITING_HEAD = "reading response header from upstream"
    RELAYING = "reading upstream"
    DONE = "done"


class Exchange:
    """
    Drives one request through ``Phase``s; the client protocol owns the
    client connection and is called back for everything the client sees.
    ``key`` is the request's balancing key (:func:`~wstunnel.balancing.balancer.request_key`).
    """

    log = ScopedLogger()

    def __init__(
        self,
        *,
        client: ClientSide,
        head: RequestHead,
        request: UpstreamRequest,
        location: Location,
        balancer: Balancer,
        key: str,
        connect: Connect,
        clock: IReactorTime,
        has_body: bool,
        stats: Stats,
        pool: IdlePool | None = None,
    ) -> None:
        self._client = client
        self._head = head
        self.request = request
        self._location = location
        self._timeouts = location.timeouts
        self.error_logs = location.error_logs  # where self.log writes (ScopedLogger)
        self._balancer = balancer
        self._pick = balancer.start(key)
        self._connect = connect
        self._clock = clock
        self._has_body = has_body
        self._retries = Retries(location.next_upstream, balancer.tries, head.method, clock.seconds())
        self.record = UpstreamRecord()
        self.phase = Phase.CONNECTING
        self.upstream: UpstreamProtocol | None = None
        self._peer: PeerState | None = None  # counted open until _end_attempt
        self._attempt: Attempt | None = None
        self._request_sent = False
        self._early = 0  # bytes that came with the 101, relayed by the tunnel
        self._timer: IDelayedCall | None = None
        self._connector: Connecting | None = None
        self._pool = pool
        self._stats = stats

    def start(self) -> None:
        self._try_next_peer()

    def _try_next_peer(self) -> None:
        now = self._clock.seconds()
        state = self._balancer.pick(self._pick, now)
        if state is None:
            self.log.error(
                'no live upstreams while connecting to upstream, client: {client}, upstream: "{name}"',
                client=self._client.peer_text,
                name=self._balancer.name,
            )
            attempt = self.record.begin(self._balancer.name, now)
            attempt.status, attempt.ended = 502, now
            self._give_up(502)
            return
        self._peer = state
        self._attempt = self.record.begin(state.peer.address, now)
        self._retries.attempt()
        self._request_sent = False
        self.phase = Phase.CONNECTING
        idle = self._pool.take(state.peer) if self._pool is not None else None
        if idle is not None:
            idle.reuse(self)
            self.upstream_connected(idle)
            return
        self._connector = self._connect(state.peer, self)

    @property
    def _peer_address(self) -> str:
        return self._attempt.address if self._attempt is not None else "-"

    # Connecting.

    def upstream_connected(self, upstream: UpstreamProtocol) -> None:
        if self.phase is Phase.DONE:
            upstream.stop()
            return
        self.upstream = upstream
        self.phase = Phase.SENDING
        upstream.peer = self._peer.peer  # type: ignore[union-attr]
        self._attempt.connected = self._clock.seconds()  # type: ignore[union-attr]
        upstream.send_head(self.request, self._location.response.buffer_size, at_once=not self._has_body)
        self._request_sent = True
        self._client.stream_body(upstream)

    def upstream_connect_failed(self, reason: Failure) -> None:
        if self.phase is Phase.DONE:
            return
        self.log.error(
            "SSL handshake with upstream {peer} failed ({error}), client: {client}"
            if reason.check(UpstreamTLSError)
            else "connect() to {peer} failed ({error}) while connecting to upstream, client: {client}",
            peer=self._peer_address,
            error=reason.getErrorMessage(),
            client=self._client.peer_text,
        )
        self._stats.upstream_failed(self._peer_address)
        self._next("timeout" if reason.check(ConnectTimeout) else "error")

    # The request body has been handed over by the client side.

    def request_sent(self) -> None:
        """The whole request is upstream: the response-head wait starts now."""
        if self.phase is not Phase.SENDING:
            return
        self.phase = Phase.AWAITING_HEAD
        self._timer = self._clock.callLater(self._timeouts.read, self._read_timed_out)

    # The answer.

    def upstream_informational(self, response: ResponseHead) -> None:
        self._client.send_informational(response)

    def upstream_head(self, response: ResponseHead) -> None:
        attempt = self._attempt
        assert attempt is not None
        attempt.header = self._clock.seconds()
        status = attempt.status = response.status
        condition = status_condition(status)
        if condition is not None and self._may_retry(condition):
            self.log.info(
                "upstream {peer} answered {status}, trying the next peer, client: {client}",
                peer=attempt.address,
                status=status,
                client=self._client.peer_text,
            )
            self._end_attempt(status, failed=counts_as_failure(condition))
            self._drop_upstream()
            self._try_next_peer()
            return
        self.phase = Phase.RELAYING
        self._rearm_read_timer()
        self._client.send_head(response, self.upstream)

    def _rearm_read_timer(self) -> None:
        """The body's read timeout starts: the head's timer moves rather than a new one per request."""
        self._timer = moved_timer(self._timer, self._clock, self._timeouts.read, self._read_timed_out)

    def upstream_data(self, data: bytes) -> None:
        self._timer.reset(self._timeouts.read)  # type: ignore[union-attr]
        self._client.send_data(data)

    def upstream_end(self) -> None:
        self._end_attempt(self._attempt.status if self._attempt else None, failed=False)
        self._finish()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            self._client.release_upstream()
            self._release(upstream)
        self._client.end_response()

    def _release(self, upstream: UpstreamProtocol) -> None:
        """Back to the pool when it may serve again, else closed (nginx's rules)."""
        extra = upstream.extra_bytes()
        if extra:
            self.log.warn(
                "upstream {peer} sent more data than specified in Content-Length ({extra} bytes dropped), "
                "client: {client}",
                peer=self._peer_address, extra=extra, client=self._client.peer_text,
            )
        if self._pool is None or not self._pool.park(upstream, self._clock):
            upstream.transport.loseConnection()

    def upstream_switch(self, response: ResponseHead, early: bytes) -> None:
        upstream = self.upstream
        assert upstream is not None and self._attempt is not None
        self._attempt.header = self._clock.seconds()
        reason = None
        if not self.request.upgrade:
            reason = "upstream switched protocols on a request that did not ask to upgrade"
        elif self.phase is not Phase.AWAITING_HEAD:
            reason = "upstream switched protocols before the request body was sent"
        else:
            # A request not made by upstream_request carries no offer: the head is read for it.
            reason = check_switch(
                self._head, response, self._location.upgrade_protocols, offer=self.request.offer or None
            )
        if reason is not None:
            self.log.error(
                "invalid 101 from upstream {peer}: {reason}, client: {client}",
                peer=self._peer_address,
                reason=reason,
                client=self._client.peer_text,
            )
            self._stats.upstream_failed(self._peer_address)
            self._stats.invalid_101()
            self._next("invalid_header", close=True)
            return
        self._attempt.status = 101
        self._finish()
        # The head-phase byte counts are taken now: the exchange lives as
        # long as the tunnel, for its end, but keeps nothing it needed for
        # connecting or retrying.  The bytes that came with the 101 are
        # counted again by the tunnel that writes them on.
        self._early = len(early)
        self._attempt.bytes_sent = upstream.request_bytes
        self._attempt.bytes_received = upstream.response_bytes
        self.request = self._pick = self._connector = self.upstream = None  # type: ignore[assignment]
        self._connect = self._retries = self._pool = None  # type: ignore[assignment]
        self._client.switch(upstream, response, early, on_end=self._tunnel_ended)

    def _tunnel_ended(self, tunnel: Tunnel) -> None:
        """The tunnel is closed: only now is the peer's connection over."""
        attempt = self._attempt
        self._end_attempt(101, failed=False)
        if attempt is not None:
            # The bytes after the 101 head were read by the upstream protocol
            # and are counted again by the tunnel that wrote them on.
            attempt.bytes_sent += tunnel.client_bytes
            attempt.bytes_received += tunnel.upstream_bytes - self._early

    def upstream_invalid(self, detail: str) -> None:
        self.log.error(
            "upstream {peer} sent an invalid response ({detail}), client: {client}",
            peer=self._peer_address,
            detail=detail,
            client=self._client.peer_text,
        )
        self._stats.upstream_failed(self._peer_address)
        self._upstream_failed("invalid_header")

    def upstream_lost(self, reason: Failure) -> None:
        if self.phase is Phase.DONE:
            return
        if self._stale_reuse():
            return
        self.log.error(
            "upstream {peer} prematurely closed connection while {phase}, client: {client}",
            peer=self._peer_address,
            phase=self.phase.value,
            client=self._client.peer_text,
        )
        self._stats.upstream_failed(self._peer_address)
        self._upstream_failed("timeout" if reason.check(TimeoutError) else "error")

    def _stale_reuse(self) -> bool:
        """
        A kept-alive connection the upstream closed just as we reused it:
        try again without spending a try or counting a failure (nginx's
        ``peer.tries++`` for cached connections), if the request may be
        sent again at all.
        """
        upstream, state = self.upstream, self._peer
        if upstream is None or state is None or not upstream.reused or upstream.response_bytes:
            return False
        self._retries.left += 1
        if not self._may_retry("error"):
            self._retries.left -= 1
            return False
        self.log.info("kept-alive connection to {peer} was closed, retrying", peer=self._peer_address)
        self._drop_upstream()
        self._pick.tried.discard(state)
        self._end_attempt(None, failed=False)
        self._try_next_peer()
        return True

    def _read_timed_out(self) -> None:
        self._timer = None
        self.log.error(
            "upstream {peer} timed out while {phase}, client: {client}",
            peer=self._peer_address,
            phase=self.phase.value,
            client=self._client.peer_text,
        )
        self._stats.upstream_failed(self._peer_address)
        self._upstream_failed("timeout")

    def _upstream_failed(self, condition: str) -> None:
        """
        Before the response head this is a failed attempt; after it, the
        client has seen a partial answer and the only honest thing left is
        to cut the connection (no final chunk).  As in nginx, a break-off
        after the head does not count against the peer.
        """
        if self.phase is Phase.RELAYING:
            self._end_attempt(self._attempt.status if self._attempt else None, failed=False)
            self._drop_upstream()
            self._finish()
            self._client.abort_response()
            return
        self._next(condition)

    # Retries.

    def _may_retry(self, condition: str) -> bool:
        return self._retries.allows(
            condition,
            self._clock.seconds(),
            request_sent=self._request_sent,
            body_sent=self._request_sent and self._has_body,
        ) and self._client.may_retry()

    def _next(self, condition: str, *, close: bool = False) -> None:
        """nginx's ngx_http_upstream_next: count the failure, then retry or give up."""
        status = client_status(condition)
        self._end_attempt(status, failed=counts_as_failure(condition))
        self._drop_upstream()
        if self._may_retry(condition):
            self._try_next_peer()
        else:
            self._give_up(status, close=close)

    def _end_attempt(self, status: int | None, *, failed: bool) -> None:
        """The current attempt's connection is over: record it, release the peer once."""
        now = self._clock.seconds()
        attempt, state = self._attempt, self._peer
        self._peer = None
        if attempt is not None and attempt.ended is None:
            attempt.status = status
            attempt.ended = now
            if self.upstream is not None:
                attempt.bytes_sent = self.upstream.request_bytes
                attempt.bytes_received = self.upstream.response_bytes
        if state is not None and self._balancer.release(state, now, failed=failed):
            self.log.warn(
                "upstream server temporarily disabled while {phase}, upstream: {peer}, client: {client}",
                phase=self.phase.value,
                peer=state.peer.address,
                client=self._client.peer_text,
            )

    def _drop_upstream(self) -> None:
        self._cancel_timer()
        if self.upstream is not None:
            self.upstream.stop()
            self.upstream = None

    def _give_up(self, status: int, *, close: bool = False) -> None:
        """
        ``close``: after an answer we could not make sense of (including a
        101 nobody asked for), the client connection is not reused either.
        """
        self._finish()
        self._client.fail(status, "upstream failed", close=close)

    # The client went away, or the exchange is over.

    def cancel(self) -> None:
        """The client is gone: drop the upstream side (logged as 499)."""
        if self.phase is Phase.DONE:
            return
        self._end_attempt(self._attempt.status if self._attempt else None, failed=False)
        self._finish()
        if self.upstream is not None:
            self.upstream.stop()
        elif self._connector is not None:
            # Still connecting, or (TLS) connected and in the handshake.
            self._connector.disconnect()

    def _finish(self) -> None:
        self.phase = Phase.DONE
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
