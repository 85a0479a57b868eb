"""
Idle upstream connections kept for reuse (``keepalive N`` in an
``upstream`` block).

One :class:`IdlePool` per upstream group, shared by every client connection
of a running configuration.  It holds at most ``keepalive`` idle
connections, least recently used first out, each for at most
``keepalive_timeout``, and retires a connection after
``keepalive_requests`` requests, as nginx does.  Only a connection whose
answer was complete, framed and not followed by stray bytes is offered
back (:meth:`UpstreamProtocol.reusable`); an idle one that receives a byte
or a close leaves at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from wstunnel.config.model import Peer, Upstream
from wstunnel.net.throttle import cancel_timer

if TYPE_CHECKING:
    from wstunnel.net.upstream import UpstreamProtocol

__all__ = ["IdlePool"]


class IdlePool:
    """The idle connections of one upstream group, oldest first."""

    def __init__(self, upstream: Upstream) -> None:
        self.capacity = upstream.keepalive
        self.timeout = upstream.keepalive_timeout
        self.max_requests = upstream.keepalive_requests
        self._idle: dict["UpstreamProtocol", IDelayedCall] = {}

    def __len__(self) -> int:
        return len(self._idle)

    def take(self, peer: Peer) -> "UpstreamProtocol | None":
        """The most recently parked connection to ``peer``, if any."""
        for conn in reversed(self._idle):
            if conn.peer == peer:
                self._forget(conn)
                return conn
        return None

    def park(self, conn: "UpstreamProtocol", clock: IReactorTime) -> bool:
        """Keep ``conn`` if it may serve again; False means the caller closes it."""
        if self.capacity <= 0 or conn.requests >= self.max_requests or not conn.reusable():
            return False
        self._idle[conn] = clock.callLater(self.timeout, self._expire, conn)
        conn.park(self)
        while len(self._idle) > self.capacity:
            oldest = next(iter(self._idle))
            self._forget(oldest)
            oldest.transport.loseConnection()
        return True

    def drop(self, conn: "UpstreamProtocol") -> None:
        """``conn`` closed or spoke while idle."""
        self._forget(conn)

    def close_all(self) -> None:
        for conn in list(self._idle):
            self._forget(conn)
            conn.transport.loseConnection()

    def _expire(self, conn: "UpstreamProtocol") -> None:
        if self._idle.pop(conn, None) is not None:
            conn.transport.loseConnection()

    def _forget(self, conn: "UpstreamProtocol") -> None:
        cancel_timer(self._idle.pop(conn, None))
