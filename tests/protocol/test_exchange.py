"""
The exchange on its own: a fake client side (what :class:`ClientSide`
declares), a MemoryReactorClock that records every dial, and upstream
protocols on string transports.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from support import Dials
from wstunnel.balancing.balancer import make_balancer
from wstunnel.config.model import Location, Peer, ProxyPass, Source, Timeouts, Upstream
from wstunnel.net.exchange import Exchange, Phase
from wstunnel.net.pool import IdlePool
from wstunnel.net.tunnel import Tunnel
from wstunnel.net.upstream import Connect, PeerConnector, UpstreamListener, UpstreamProtocol
from wstunnel.obs.metrics import Stats, series
from wstunnel.wire.request import RequestHead
from wstunnel.wire.response import ResponseHead
from wstunnel.wire.upstream import UpstreamRequest

SRC = Source("t.conf", 1)
A = Peer("127.0.0.1", 9001, "127.0.0.1:9001")
B = Peer("127.0.0.1", 9002, "127.0.0.1:9002")
GET = RequestHead(b"GET", b"/", b"1.1", ((b"Host", b"h"),))
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = RequestHead(
    b"GET", b"/", b"1.1",
    ((b"Host", b"h"), (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Key", KEY)),
)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class FakeClient:
    """A client side that records what the exchange told it."""

    peer_text = "127.0.0.1:40000"

    def __init__(self) -> None:
        self.exchange: Exchange | None = None
        self.events: list[tuple] = []

    def stream_body(self, upstream: UpstreamProtocol) -> None:
        upstream.end_body()
        self.exchange.request_sent()  # type: ignore[union-attr]

    def may_retry(self) -> bool:
        return not any(name in ("head", "switch") for name, *_ in self.events)

    def send_informational(self, response: ResponseHead) -> None:
        self.events.append(("informational", response.status))

    def send_head(self, response: ResponseHead, upstream: UpstreamProtocol | None) -> None:
        self.events.append(("head", response.status))

    def send_data(self, data: bytes) -> None:
        self.events.append(("data", data))

    def release_upstream(self) -> None:
        self.events.append(("release",))

    def end_response(self) -> None:
        self.events.append(("end",))

    def abort_response(self) -> None:
        self.events.append(("abort",))

    def fail(self, status: int, detail: str, *, close: bool = False) -> None:
        self.events.append(("fail", status, close))

    def switch(
        self, upstream: UpstreamProtocol, response: ResponseHead, early: bytes, on_end: Callable[[Tunnel], None]
    ) -> None:
        self.events.append(("switch", response.status))


class Rig(Dials):
    """One upstream group, its balancer and pool, and the exchanges of its requests."""

    def __init__(self, *peers: Peer, keepalive: int = 0, timeouts: Timeouts = Timeouts()) -> None:
        super().__init__(MemoryReactorClock())
        upstream = Upstream("backend", peers, False, SRC, keepalive=keepalive)
        self.location = Location(
            path="/", exact=False, proxy_pass=ProxyPass("http", upstream, None, "backend", SRC),
            http_version="1.1", set_headers=(), timeouts=timeouts, access_logs=(), source=SRC,
        )
        self.balancer = make_balancer(upstream)
        self.pool = IdlePool(upstream) if keepalive else None
        self.stats = Stats(list, dict)

    def exchange(self, head: RequestHead = GET, connect: Connect | None = None) -> tuple[Exchange, FakeClient]:
        client = FakeClient()
        upgrade = head is UPGRADE
        headers = ((b"Host", b"backend"), (b"Connection", b"upgrade" if upgrade else b"keep-alive"))
        if upgrade:
            headers += ((b"Upgrade", b"websocket"),)
        request = UpstreamRequest(head.method, head.target, b"1.1", headers, upgrade)
        exchange = client.exchange = Exchange(
            client=client,
            head=head,
            request=request,
            location=self.location,
            balancer=self.balancer,
            key="",
            connect=connect or PeerConnector(self.location.timeouts.connect).bind(self.reactor, self.reactor),
            clock=self.reactor,
            has_body=False,
            stats=self.stats,
            pool=self.pool,
        )
        exchange.start()
        return exchange, client

    def failures(self) -> dict[str, float]:
        prefix = "wstunnel_upstream_"
        return {key: value for key, value in self.stats.counters.items() if key.startswith(prefix)}


def test_a_refused_connect_goes_to_the_next_peer_and_counts_against_the_first() -> None:
    rig = Rig(A, B)
    exchange, client = rig.exchange()
    assert rig.ports() == [9001]
    assert exchange.phase is Phase.CONNECTING
    rig.refuse()
    assert rig.ports() == [9001, 9002]
    upstream, transport = rig.upstream()
    assert transport.value().startswith(b"GET / HTTP/1.1\r\nHost: backend\r\n")
    assert exchange.phase is Phase.AWAITING_HEAD
    upstream.dataReceived(OK)
    assert client.events == [("head", 200), ("data", b"ok"), ("release",), ("end",)]
    assert [(a.address, a.status) for a in exchange.record.attempts] == [("127.0.0.1:9001", 502), ("127.0.0.1:9002", 200)]
    assert rig.failures() == {series("wstunnel_upstream_failures_total", peer="127.0.0.1:9001"): 1}


def test_when_every_peer_failed_the_client_gets_the_last_status() -> None:
    rig = Rig(A, B)
    _, client = rig.exchange()
    rig.refuse()
    rig.refuse()
    assert rig.ports() == [9001, 9002]
    assert client.events == [("fail", 502, False)]
    assert sum(rig.failures().values()) == 2


def test_a_silent_upstream_is_a_504_after_proxy_read_timeout() -> None:
    rig = Rig(A, timeouts=Timeouts(read=5.0))
    exchange, client = rig.exchange()
    _, transport = rig.upstream()
    rig.reactor.advance(4.9)
    assert client.events == []
    rig.reactor.advance(0.1)
    assert client.events == [("fail", 504, False)]
    assert transport.disconnecting
    assert exchange.phase is Phase.DONE


def test_a_stale_pooled_connection_is_retried_without_spending_a_try_or_counting_a_failure() -> None:
    rig = Rig(A, keepalive=1)
    _, first = rig.exchange()
    upstream, transport = rig.upstream()
    upstream.dataReceived(OK)
    assert first.events[-1] == ("end",)
    assert len(rig.pool) == 1 and not transport.disconnecting

    exchange, second = rig.exchange()
    assert rig.ports() == [9001], "the pooled connection took the request"
    assert upstream.reused and transport.value().count(b"GET / HTTP/1.1") == 2
    upstream.connectionLost(Failure(ConnectionDone()))
    assert rig.ports() == [9001, 9001], "a fresh connection to the same (only) peer"
    fresh, _ = rig.upstream()
    fresh.dataReceived(OK)
    assert second.events == [("head", 200), ("data", b"ok"), ("release",), ("end",)]
    assert [a.status for a in exchange.record.attempts] == [None, 200]
    assert rig.failures() == {}


def test_a_pooled_connection_closed_after_its_answer_began_is_an_ordinary_failure() -> None:
    rig = Rig(A, keepalive=1)
    rig.exchange()
    upstream, _ = rig.upstream()
    upstream.dataReceived(OK)
    _, client = rig.exchange()
    assert upstream.reused
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\n")
    upstream.connectionLost(Failure(ConnectionDone()))
    assert rig.ports() == [9001], "the only peer has had its try"
    assert client.events == [("fail", 502, False)]
    assert rig.failures() == {series("wstunnel_upstream_failures_total", peer="127.0.0.1:9001"): 1}


def test_an_invalid_101_is_a_502_that_closes_and_is_counted() -> None:
    rig = Rig(A, B)
    exchange, client = rig.exchange(UPGRADE)
    upstream, transport = rig.upstream()
    assert b"Upgrade: websocket" in transport.value()
    upstream.dataReceived(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: bm90IHRoZSBhY2NlcHQ=\r\n\r\n"
    )
    assert client.events == [("fail", 502, True)]
    assert rig.ports() == [9001], "invalid_header is not retried by default"
    assert transport.disconnecting
    assert exchange.phase is Phase.DONE
    assert rig.failures() == {
        series("wstunnel_upstream_failures_total", peer="127.0.0.1:9001"): 1,
        "wstunnel_upstream_invalid_101_total": 1,
    }


def test_a_valid_101_switches_and_counts_nothing() -> None:
    rig = Rig(A)
    exchange, client = rig.exchange(UPGRADE)
    upstream, _ = rig.upstream()
    upstream.dataReceived(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    assert client.events == [("switch", 101)]
    assert exchange.phase is Phase.DONE
    assert rig.failures() == {}


class Dialling:
    """A connection attempt that never completes."""

    disconnected = False

    def disconnect(self) -> None:
        self.disconnected = True


def test_cancel_while_connecting_disconnects_through_the_connect_seam() -> None:
    rig = Rig(A)
    dials: list[tuple[Peer, UpstreamListener, Dialling]] = []

    def connect(peer: Peer, listener: UpstreamListener) -> Dialling:
        dials.append((peer, listener, Dialling()))
        return dials[-1][2]

    exchange, client = rig.exchange(connect=connect)
    [(peer, listener, dialling)] = dials
    assert peer == A and listener is exchange
    exchange.cancel()
    assert dialling.disconnected
    assert exchange.phase is Phase.DONE
    assert client.events == []
