"""
One request's trip to an upstream and back.

The exchange picks a peer, connects under ``proxy_connect_timeout``, lets
the client side stream the request body, waits for the response head under
``proxy_read_timeout``, and relays the answer.  It retries another peer on
the failures nginx's default ``proxy_next_upstream error timeout`` covers,
but only while nothing has reached the client and the request can be sent
again (no body, idempotent method).  A 101 is checked before a tunnel may
open; any other 101 is a 502.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

import h11
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from .balancer import RoundRobin
from .headers import UpstreamRequest, check_switch
from .model import Location, Peer
from .pool import IdlePool
from .request import RequestHead
from .upstream import UpstreamFactory, UpstreamProtocol

if TYPE_CHECKING:
    from .frontend import ClientProtocol

__all__ = ["Exchange"]

_NOT_IDEMPOTENT = frozenset({b"POST", b"PATCH", b"LOCK"})


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
    """

    log = Logger()

    def __init__(
        self,
        *,
        client: "ClientProtocol",
        head: RequestHead,
        request: UpstreamRequest,
        location: Location,
        balancer: RoundRobin,
        reactor: IReactorTCP,
        clock: IReactorTime,
        has_body: bool,
        pool: IdlePool | None = None,
    ) -> None:
        self._client = client
        self._head = head
        self.request = request
        self._location = location
        self._timeouts = location.timeouts
        self._balancer = balancer
        self._reactor = reactor
        self._clock = clock
        self._replayable = not has_body and head.method not in _NOT_IDEMPOTENT
        self.phase = Phase.CONNECTING
        self.tried: list[Peer] = []
        self.upstream: UpstreamProtocol | None = None
        self._timer: IDelayedCall | None = None
        self._connector: object | None = None
        self._last_status = 502
        self._pool = pool

    @property
    def upstream_addr(self) -> str:
        """``$upstream_addr``: every peer tried, as nginx writes it."""
        return ", ".join(peer.address for peer in self.tried)

    def start(self) -> None:
        self._try_next_peer()

    def _try_next_peer(self) -> None:
        peer = self._balancer.pick(self.tried)
        if peer is None:
            self._give_up(self._last_status)
            return
        self.tried.append(peer)
        self.phase = Phase.CONNECTING
        idle = self._pool.take(peer) if self._pool is not None else None
        if idle is not None:
            idle.reuse(self)
            self.upstream_connected(idle)
            return
        self._connector = self._reactor.connectTCP(
            peer.host, peer.port, UpstreamFactory(self), timeout=self._timeouts.connect
        )

    # Connecting.

    def upstream_connected(self, upstream: UpstreamProtocol) -> None:
        if self.phase is Phase.DONE:
            upstream.stop()
            return
        self.upstream = upstream
        upstream.peer = self.tried[-1]
        self.phase = Phase.SENDING
        try:
            upstream.send_head(self.request, self._location.response.buffer_size)
        except h11.LocalProtocolError as e:
            self.log.error("cannot send request upstream: {error}", error=str(e))
            self._finish()
            upstream.stop()
            self._client.fail(500, "request could not be sent upstream")
            return
        self._client.stream_body(upstream)

    def upstream_connect_failed(self, reason: Failure) -> None:
        if self.phase is Phase.DONE:
            return
        timed_out = reason.check(ConnectTimeout) is not None
        self.log.error(
            "connect() to {peer} failed ({error}) while connecting to upstream, client: {client}",
            peer=self.tried[-1].address,
            error=reason.getErrorMessage(),
            client=self._client.peer_text,
        )
        self._last_status = 504 if timed_out else 502
        self._try_next_peer()

    # The request body has been handed over by the client side.

    def request_sent(self) -> None:
        """The whole request is upstream: the response-head wait starts now."""
        if self.phase is not Phase.SENDING:
            return
        self.phase = Phase.AWAITING_HEAD
        self._timer = self._clock.callLater(self._timeouts.read, self._read_timed_out)

    # The answer.

    def upstream_informational(self, event: h11.InformationalResponse) -> None:
        self._client.send_informational(event)

    def upstream_head(self, event: h11.Response) -> None:
        self._cancel_timer()
        self.phase = Phase.RELAYING
        self._timer = self._clock.callLater(self._timeouts.read, self._read_timed_out)
        self._client.send_head(event, self.upstream)

    def upstream_data(self, data: bytes) -> None:
        self._timer.reset(self._timeouts.read)  # type: ignore[union-attr]
        self._client.send_data(data)

    def upstream_end(self) -> None:
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
                peer=self.tried[-1].address, extra=extra, client=self._client.peer_text,
            )
        if self._pool is None or not self._pool.park(upstream, self._clock):
            upstream.transport.loseConnection()

    def upstream_switch(self, event: h11.InformationalResponse, early: bytes) -> None:
        upstream = self.upstream
        assert upstream is not None
        headers = event.headers.raw_items()
        reason = None
        if not self.request.upgrade:
            reason = "upstream switched protocols on a request that did not ask to upgrade"
        elif self.phase is not Phase.AWAITING_HEAD:
            reason = "upstream switched protocols before the request body was sent"
        else:
            reason = check_switch(self._head, event.status_code, headers)
        if reason is not None:
            self.log.error(
                "invalid 101 from upstream {peer}: {reason}, client: {client}",
                peer=self.tried[-1].address,
                reason=reason,
                client=self._client.peer_text,
            )
            self._finish()
            upstream.stop()
            self._client.fail(502, reason, close=True)
            return
        self._finish()
        self._client.switch(upstream, event, early)

    def upstream_invalid(self, detail: str) -> None:
        self.log.error(
            "upstream {peer} sent an invalid response ({detail}), client: {client}",
            peer=self.tried[-1].address,
            detail=detail,
            client=self._client.peer_text,
        )
        self._upstream_failed(502, retry=False, close=True)

    def upstream_lost(self, reason: Failure) -> None:
        if self.phase is Phase.DONE:
            return
        upstream = self.upstream
        if (upstream is not None and upstream.reused and upstream.response_bytes == 0
                and self._replayable and self._client.may_retry()):
            # A kept-alive connection the upstream closed as we reused it:
            # try again without counting the peer as tried (nginx does so).
            self.log.info("kept-alive connection to {peer} was closed, retrying", peer=self.tried[-1].address)
            self._cancel_timer()
            self.upstream = None
            self.tried.pop()
            self._try_next_peer()
            return
        self.log.error(
            "upstream {peer} prematurely closed connection while {phase}, client: {client}",
            peer=self.tried[-1].address,
            phase=self.phase.value,
            client=self._client.peer_text,
        )
        self._upstream_failed(502, retry=True)

    def _read_timed_out(self) -> None:
        self._timer = None
        self.log.error(
            "upstream {peer} timed out while {phase}, client: {client}",
            peer=self.tried[-1].address,
            phase=self.phase.value,
            client=self._client.peer_text,
        )
        self._upstream_failed(504, retry=True)

    def _upstream_failed(self, status: int, *, retry: bool, close: bool = False) -> None:
        """
        Before the response head, try the next peer if nginx would; after
        it, the client has seen a partial answer and the only honest thing
        left is to cut the connection (no final chunk).
        """
        relaying = self.phase is Phase.RELAYING
        self._cancel_timer()
        if self.upstream is not None:
            self.upstream.stop()
            self.upstream = None
        if relaying:
            self._finish()
            self._client.abort_response()
            return
        self._last_status = status
        if retry and self._replayable and self._client.may_retry():
            self._try_next_peer()
        else:
            self._give_up(status, close=close)

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
        self._finish()
        if self.upstream is not None:
            self.upstream.stop()
        elif self._connector is not None:
            self._connector.stopConnecting()  # type: ignore[attr-defined]

    def _finish(self) -> None:
        self.phase = Phase.DONE
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
