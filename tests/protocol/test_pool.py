"""The idle upstream connections of one group: capacity, timeout, request limit, most recent first."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from wstunnel.config.model import Peer, Source, Upstream
from wstunnel.net.pool import IdlePool

A = Peer("10.0.0.1", 80, "a")
B = Peer("10.0.0.2", 80, "b")


class Conn:
    """What the pool reads from an upstream connection."""

    def __init__(self, peer: Peer, *, requests: int = 1, reusable: bool = True) -> None:
        self.peer = peer
        self.requests = requests
        self._reusable = reusable
        self.transport = StringTransport()
        self.slot = None

    def reusable(self) -> bool:
        return self._reusable

    def park(self, slot: IdlePool) -> None:
        self.slot = slot

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting


def pool(keepalive: int = 2, timeout: float = 60.0, requests: int = 1000) -> IdlePool:
    upstream = Upstream("backend", (A, B), False, Source("t.conf", 1), keepalive=keepalive,
                        keepalive_timeout=timeout, keepalive_requests=requests)
    return IdlePool(upstream)


def test_take_gives_the_most_recently_parked_connection_to_that_peer() -> None:
    clock, idle = Clock(), pool(keepalive=3)
    first, second, other = Conn(A), Conn(A), Conn(B)
    for conn in (first, second, other):
        assert idle.park(conn, clock)
    assert first.slot is idle
    assert idle.take(A) is second
    assert idle.take(A) is first
    assert idle.take(A) is None
    assert idle.take(B) is other
    assert len(idle) == 0
    assert clock.getDelayedCalls() == []


def test_a_connection_that_cannot_serve_again_is_refused() -> None:
    clock, idle = Clock(), pool(requests=3)
    assert not idle.park(Conn(A, reusable=False), clock)
    assert not idle.park(Conn(A, requests=3), clock)
    assert idle.park(Conn(A, requests=2), clock)
    assert len(idle) == 1


def test_no_keepalive_keeps_nothing() -> None:
    assert not pool(keepalive=0).park(Conn(A), Clock())


def test_past_capacity_the_oldest_is_closed() -> None:
    clock, idle = Clock(), pool(keepalive=2)
    oldest, middle, newest = Conn(A), Conn(B), Conn(A)
    for conn in (oldest, middle, newest):
        assert idle.park(conn, clock)
    assert oldest.closed and not middle.closed and not newest.closed
    assert len(idle) == 2
    assert len(clock.getDelayedCalls()) == 2
    assert idle.take(A) is newest


def test_an_idle_connection_is_closed_after_keepalive_timeout() -> None:
    clock, idle = Clock(), pool(timeout=5.0)
    conn = Conn(A)
    idle.park(conn, clock)
    clock.advance(4.9)
    assert not conn.closed
    clock.advance(0.1)
    assert conn.closed
    assert idle.take(A) is None


def test_drop_forgets_a_connection_and_its_timer() -> None:
    clock, idle = Clock(), pool()
    conn = Conn(A)
    idle.park(conn, clock)
    idle.drop(conn)
    assert len(idle) == 0
    assert clock.getDelayedCalls() == []
    assert not conn.closed, "the connection closed itself"


def test_close_all_closes_every_idle_connection() -> None:
    clock, idle = Clock(), pool()
    conns = [Conn(A), Conn(B)]
    for conn in conns:
        idle.park(conn, clock)
    idle.close_all()
    assert all(conn.closed for conn in conns)
    assert len(idle) == 0
    assert clock.getDelayedCalls() == []
