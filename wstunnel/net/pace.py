"""
Byte rates kept by pausing the sending transport: ``limit_rate`` and
``proxy_limit_rate`` on a proxied response and ``wstunnel_tunnel_rate`` on
each direction of a tunnel.

:class:`Pace` stands between a consumer's :class:`~wstunnel.net.throttle.Throttle`
and the source transport, so the source is paused while either its
consumer is full or it is ahead of the rate, and resumed only when neither
holds.  Being ahead is a token bucket of one second's worth of bytes: an
idle connection earns no more than one second of burst.  Nothing sleeps; a
timer resumes the source when the bucket has refilled.

:class:`RatedTunnel` is the tunnel of a location with
``wstunnel_tunnel_rate``; every other tunnel is a plain
:class:`~wstunnel.net.tunnel.Tunnel` and pays nothing for this.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

from wstunnel.config.model import Location
from wstunnel.config.units import parse_size
from wstunnel.core.variables import RequestVars, render
from wstunnel.net.throttle import cancel_timer
from wstunnel.net.tunnel import Tunnel, TunnelEnd

__all__ = ["Pace", "RatedTunnel", "client_rate", "response_pace", "tunnel_type"]


@implementer(IPushProducer)
class Pace:
    """One source held to ``rate`` bytes per second, after ``free`` bytes at full speed."""

    __slots__ = ("_source", "_clock", "_rate", "_free", "_tokens", "_last", "_full", "_wait", "_inner")

    def __init__(self, source: IPushProducer, clock: IReactorTime, rate: int, free: int = 0) -> None:
        self._source = source
        # A Pace this one paces in turn (proxy_limit_rate under limit_rate): it counts every byte too.
        self._inner = source if isinstance(source, Pace) else None
        self._clock = clock
        self._rate = rate
        self._free = free
        self._tokens = float(rate)
        self._last = clock.seconds()
        self._full = False  # the consumer asked for a pause
        self._wait: IDelayedCall | None = None

    def sent(self, count: int) -> None:
        """``count`` more bytes went through; past the bucket, the source waits for it to refill."""
        if self._inner is not None:
            self._inner.sent(count)
        if self._free:
            spent = min(self._free, count)
            self._free -= spent
            count -= spent
            if not count:
                return
        now = self._clock.seconds()
        self._tokens = min(float(self._rate), self._tokens + (now - self._last) * self._rate) - count
        self._last = now
        if self._tokens < 0 and self._wait is None:
            self._source.pauseProducing()
            self._wait = self._clock.callLater(-self._tokens / self._rate, self._refilled)

    def pauseProducing(self) -> None:
        self._full = True
        self._source.pauseProducing()

    def resumeProducing(self) -> None:
        self._full = False
        if self._wait is None:
            self._source.resumeProducing()

    def stopProducing(self) -> None:
        self.stop()

    def stop(self) -> None:
        """No more resumes: the source saw EOF or is closing."""
        if self._inner is not None:
            self._inner.stop()
        cancel_timer(self._wait)
        self._wait = None
        self._full = True

    def _refilled(self) -> None:
        self._wait = None
        if not self._full:
            self._source.resumeProducing()


class RatedTunnel(Tunnel):
    """
    A tunnel whose two directions each carry at most ``rate`` bytes per
    second.  Its data path is written out rather than extending the plain
    one, so a chunk costs no ``super()`` call.
    """

    __slots__ = ("_rate", "_client_pace", "_upstream_pace")

    def __init__(self, *, rate: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._rate = rate
        self._client_pace: Pace | None = None
        self._upstream_pace: Pace | None = None

    def start(self, client_early: bytes, upstream_early: bytes) -> None:
        super().start(client_early, upstream_early)
        self._client_pace = Pace(self._client, self._clock, self._rate)
        self._upstream_pace = Pace(self._upstream, self._clock, self._rate)
        assert self._feeds_upstream is not None and self._feeds_client is not None
        self._feeds_upstream.retarget(self._client_pace)
        self._feeds_client.retarget(self._upstream_pace)
        self._client_pace.sent(len(client_early))
        self._upstream_pace.sent(len(upstream_early))

    def from_client(self, data: bytes) -> None:
        self._to_upstream_write(data)
        self.client_bytes += len(data)
        self._last = self._now()
        self._client_pace.sent(len(data))  # type: ignore[union-attr]

    def from_upstream(self, data: bytes) -> None:
        self._to_client_write(data)
        self.upstream_bytes += len(data)
        self._last = self._now()
        self._upstream_pace.sent(len(data))  # type: ignore[union-attr]

    def client_eof(self) -> None:
        if self._client_pace is not None:
            self._client_pace.stop()
        super().client_eof()

    def upstream_eof(self) -> None:
        if self._upstream_pace is not None:
            self._upstream_pace.stop()
        super().upstream_eof()

    def close(self, reason: TunnelEnd) -> None:
        for pace in (self._client_pace, self._upstream_pace):
            if pace is not None:
                pace.stop()
        super().close(reason)


def tunnel_type(location: Location) -> Callable[..., Tunnel]:
    """The tunnel for ``location``: rated only where ``wstunnel_tunnel_rate`` is set."""
    limits = location.limits
    if limits is None or not limits.tunnel_rate:
        return Tunnel
    return partial(RatedTunnel, rate=limits.tunnel_rate)


def response_pace(location: Location, rv: RequestVars, source: IPushProducer, clock: IReactorTime) -> Pace | None:
    """
    ``limit_rate`` / ``limit_rate_after`` for the response about to be
    relayed from ``source``, and ``proxy_limit_rate`` on reading it from the
    upstream (the inner pace when both are set); None without a rate (a
    value with variables that does not render to a size is no limit).
    """
    limits = location.limits
    if limits is None:
        return None
    reading = Pace(source, clock, limits.proxy_rate) if limits.proxy_rate else None
    rate, free = client_rate(location, rv)
    if not rate:
        return reading
    return Pace(reading or source, clock, rate, free=free)


def client_rate(location: Location, rv: RequestVars) -> tuple[int, int]:
    """``limit_rate`` and ``limit_rate_after`` for one answer; a rate of 0 is none."""
    limits = location.limits
    if limits is None or limits.rate is None:
        return 0, 0
    try:
        return parse_size(render(limits.rate, rv)), limits.rate_after
    except ValueError:
        return 0, 0
