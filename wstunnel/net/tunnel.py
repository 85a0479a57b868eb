"""
The tunnel: after a valid 101 the client and upstream connections carry
opaque bytes both ways until both are done.

Rules (doc/proxying.md describes them for operators): each transport is
the streaming producer of the other, so a side that stops reading pauses
the other side's reads and at most ``bufferSize`` plus one read is held per
direction; a FIN is passed on as a write shutdown while the other direction
keeps flowing (over TLS, which cannot half-close, it becomes a close after
the pending bytes); ``proxy_read_timeout`` is an idle timeout counted from
the last traffic either way; a stalled write is bounded by ``send_timeout``
/ ``proxy_send_timeout``; every close unregisters producers first and
bounds the wait for each side to go with an abort.

A tunnel has one timer of its own.  Traffic only notes the time; the timer,
when it fires, either finds the tunnel idle or moves to the new deadline, so
a tunnel that talks is re-armed once per ``proxy_read_timeout``, not per
message.  Once the tunnel is closing, the same timer carries the abort of
whichever side has not gone yet.
"""

from __future__ import annotations

from enum import Enum
from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ISSLTransport, ITransport

from wstunnel.net.throttle import Throttle, cancel_timer, moved_timer
from wstunnel.obs.logs import ScopedLogger
from wstunnel.config.model import ErrorLog, Timeouts

__all__ = ["MAX_BUFFERED_PER_DIRECTION", "Tunnel", "TunnelEnd"]

# The most user-space memory a tunnel holds in one direction: the consumer
# transport's write buffer may pass Twisted's ``bufferSize`` (64 KiB) by at
# most one read of the producer (another 64 KiB) before the producer is paused.
MAX_BUFFERED_PER_DIRECTION = 2 * 64 * 1024


class TunnelEnd(Enum):
    """
    Why a tunnel ended, for the access log and metrics.  When the
    connections end by themselves the reason is the side that closed (or
    half-closed) first, so a client's FIN that the upstream answers with
    its own is still ``CLIENT_CLOSED``.
    """

    CLIENT_CLOSED = "client closed"
    UPSTREAM_CLOSED = "upstream closed"
    IDLE_TIMEOUT = "idle timeout"
    CLIENT_SEND_TIMEOUT = "client send timeout"
    UPSTREAM_SEND_TIMEOUT = "upstream send timeout"
    SHUTDOWN = "shutdown"


class Tunnel:
    """
    Two transports joined after a 101.

    The protocols hand their data straight to :meth:`from_client` /
    :meth:`from_upstream` (bound once, so a chunk costs one Python call),
    and report EOF and loss through the other methods.  Slotted: an idle
    tunnel is mostly this object, and a tunnel may idle for days.

    :ivar client_bytes: bytes read from the client and written upstream.
    :ivar upstream_bytes: bytes read from the upstream and written to the client.
    """

    __slots__ = (
        "_client", "_upstream", "_to_client_write", "_to_upstream_write", "_clock", "_now", "_timeouts",
        "_on_end", "error_logs", "_feeds_client", "_feeds_upstream", "_timer", "_last", "_client_eof",
        "_upstream_eof", "_client_gone", "_upstream_gone", "_abort_client", "_abort_upstream", "_first_eof",
        "closing", "reason", "client_bytes", "upstream_bytes",
    )

    log = ScopedLogger()

    def __init__(
        self,
        *,
        client: ITransport,
        upstream: ITransport,
        to_client: Callable[[bytes], None],
        to_upstream: Callable[[bytes], None],
        clock: IReactorTime,
        timeouts: Timeouts,
        on_end: Callable[["Tunnel"], None],
        error_logs: tuple[ErrorLog, ...] = (),
    ) -> None:
        self._client = client
        self._upstream = upstream
        self._clock = clock
        self._now = clock.seconds  # read per chunk: looked up once
        self._timeouts = timeouts
        self._on_end = on_end
        self.error_logs = error_logs  # its location's, where self.log writes (ScopedLogger)
        # The protocols' own direct writers (wstunnel.net.fastwrite): a closure
        # per transport, not two more per tunnel.
        self._to_client_write = to_client
        self._to_upstream_write = to_upstream
        # Producer registrations we own: the upstream feeds the client
        # transport, the client feeds the upstream transport.
        self._feeds_client: Throttle | None = None
        self._feeds_upstream: Throttle | None = None
        self._timer: IDelayedCall | None = None
        self._last = 0.0  # when the last traffic went through
        self._client_eof = False
        self._upstream_eof = False
        self._client_gone = False
        self._upstream_gone = False
        # Once closing: when each side still there is aborted (None: gone, or aborted).
        self._abort_client: float | None = None
        self._abort_upstream: float | None = None
        self._first_eof: TunnelEnd | None = None
        self.closing = False
        self.reason: TunnelEnd | None = None
        self.client_bytes = 0
        self.upstream_bytes = 0

    def start(self, client_early: bytes, upstream_early: bytes) -> None:
        """
        Deliver the bytes each side sent before the switch, then wire the
        transports.  Early bytes go first so nothing is reordered.
        """
        if upstream_early:
            self.upstream_bytes += len(upstream_early)
            self._to_client_write(upstream_early)
        if client_early:
            self.client_bytes += len(client_early)
            self._to_upstream_write(client_early)
        self._feeds_client = Throttle(
            self._upstream, self._clock, self._timeouts.client_send, self._client_stalled
        )
        self._feeds_upstream = Throttle(
            self._client, self._clock, self._timeouts.send, self._upstream_stalled
        )
        self._client.registerProducer(self._feeds_client, True)
        self._upstream.registerProducer(self._feeds_upstream, True)
        # Both legs already have TCP_NODELAY: the client's from the listening
        # socket (service.bind_socket), the upstream's from its connectionMade.
        self._last = self._now()
        self._timer = self._clock.callLater(self._timeouts.read, self._tick)
        self._client.resumeProducing()
        self._upstream.resumeProducing()

    # The data path: one call per chunk, no parsing, no copying, no logging.

    def from_client(self, data: bytes) -> None:
        self._to_upstream_write(data)
        self.client_bytes += len(data)
        self._last = self._now()

    def from_upstream(self, data: bytes) -> None:
        self._to_client_write(data)
        self.upstream_bytes += len(data)
        self._last = self._now()

    # Half-close.

    def client_eof(self) -> None:
        """The client sent FIN: pass it on, keep the other direction open."""
        self._client_eof = True
        self._stop_feeding_upstream()
        self._pass_eof(self._upstream, TunnelEnd.CLIENT_CLOSED)

    def upstream_eof(self) -> None:
        self._upstream_eof = True
        self._stop_feeding_client()
        self._pass_eof(self._client, TunnelEnd.UPSTREAM_CLOSED)

    def _pass_eof(self, peer: ITransport, reason: TunnelEnd) -> None:
        if self.closing:
            return
        self._first_eof = self._first_eof or reason
        if self._client_eof and self._upstream_eof:
            self.close(self._first_eof)
        elif ISSLTransport.providedBy(peer):
            # TLS cannot half-close (twisted#5341): flush and close instead.
            self.close(reason)
        else:
            peer.loseWriteConnection()  # type: ignore[attr-defined]

    # Loss of a connection, whoever caused it.

    def client_lost(self) -> None:
        self._client_gone = True
        self._abort_client = None
        self._lost(TunnelEnd.CLIENT_CLOSED)

    def upstream_lost(self) -> None:
        self._upstream_gone = True
        self._abort_upstream = None
        self._lost(TunnelEnd.UPSTREAM_CLOSED)

    def _lost(self, reason: TunnelEnd) -> None:
        if not self.closing:
            self.close(self._first_eof or reason)
        if self._client_gone and self._upstream_gone:
            self._stop_timer()
            self._on_end(self)

    def close(self, reason: TunnelEnd) -> None:
        """
        Close both sides after their pending bytes, unregistering our
        producers first (Twisted's ``loseConnection`` does not close while a
        producer is registered); a side still there when its grace
        (``send_timeout`` for the client, ``proxy_send_timeout`` for the
        upstream) runs out is aborted.
        """
        if self.closing:
            return
        self.closing = True
        self.reason = reason
        self._stop_feeding_client()
        self._stop_feeding_upstream()
        # A side whose write half is already shut closes inside loseConnection
        # (its connectionLost runs there): it needs no abort.
        now = self._now()
        graces = []
        if not self._client_gone:
            self._client.loseConnection()
            if not self._client_gone:
                grace = self._timeouts.client_send
                self._abort_client = now + grace
                graces.append(grace)
        if not self._upstream_gone:
            self._upstream.loseConnection()
            if not self._upstream_gone:
                grace = self._timeouts.send
                self._abort_upstream = now + grace
                graces.append(grace)
        if graces:
            self._set_timer(min(graces))
        else:
            self._stop_timer()

    def abort(self) -> None:
        """Drop both connections now (the end of a graceful shutdown that ran out of time)."""
        self.close(TunnelEnd.SHUTDOWN)
        self._abort_client = self._abort_upstream = None
        self._stop_timer()
        self._client.abortConnection()  # type: ignore[attr-defined]
        self._upstream.abortConnection()  # type: ignore[attr-defined]

    # A registration is revoked only when its source has sent EOF or the
    # tunnel is closing, so the source is never resumed here: resuming a
    # transport that saw EOF would read the EOF a second time.

    def _stop_feeding_client(self) -> None:
        if self._feeds_client is not None:
            self._feeds_client.revoke()
            self._feeds_client = None
            self._client.unregisterProducer()

    def _stop_feeding_upstream(self) -> None:
        if self._feeds_upstream is not None:
            self._feeds_upstream.revoke()
            self._feeds_upstream = None
            self._upstream.unregisterProducer()

    # The timer.

    def _tick(self) -> None:
        self._timer = None
        if self.closing:
            self._abort_lingering()
            return
        deadline = self._last + self._timeouts.read
        now = self._now()
        if now < deadline:
            self._timer = self._clock.callLater(deadline - now, self._tick)
            return
        self.log.info("tunnel idle for {timeout}s, closing", timeout=self._timeouts.read)
        self.close(TunnelEnd.IDLE_TIMEOUT)

    def _abort_lingering(self) -> None:
        """Every side whose abort is due goes; the timer moves to the next one, if any."""
        now = self._now()
        client, upstream = self._abort_client, self._abort_upstream
        if client is not None and now >= client:
            self._abort_client = client = None
            self._client.abortConnection()  # type: ignore[attr-defined]
        if upstream is not None and now >= upstream:
            self._abort_upstream = upstream = None
            self._upstream.abortConnection()  # type: ignore[attr-defined]
        if client is not None or upstream is not None:
            self._set_timer(min(d for d in (client, upstream) if d is not None) - now)

    def _set_timer(self, delay: float) -> None:
        self._timer = moved_timer(self._timer, self._clock, delay, self._tick)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        cancel_timer(timer)

    def _client_stalled(self) -> None:
        self.log.info("client did not read for {timeout}s, closing tunnel",
                      timeout=self._timeouts.client_send)
        self.close(TunnelEnd.CLIENT_SEND_TIMEOUT)
        self._abort_client = None
        self._client.abortConnection()  # type: ignore[attr-defined]

    def _upstream_stalled(self) -> None:
        self.log.info("upstream did not read for {timeout}s, closing tunnel",
                      timeout=self._timeouts.send)
        self.close(TunnelEnd.UPSTREAM_SEND_TIMEOUT)
        self._abort_upstream = None
        self._upstream.abortConnection()  # type: ignore[attr-defined]
