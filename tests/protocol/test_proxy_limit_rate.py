"""
proxy_limit_rate: the reading of a response from its upstream held to a
rate, alone and under limit_rate (the slower of the two holds; the bytes
limit_rate_after lets through still count against proxy_limit_rate).
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.task import Clock

from support import HalfCloseTransport, MemoryProxy, load_text
from test_pace import CONF
from wstunnel.net.pace import Pace


def test_proxy_limit_rate_paces_reading_from_the_upstream(tmp_path: Path) -> None:
    p = MemoryProxy(load_text(tmp_path / "t.conf", CONF.format(extra="proxy_limit_rate 1k;")))
    p.connect_client(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream, ut = p.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 1024)
    assert ut.producerState == "producing", "one second of burst"
    upstream.dataReceived(b"x" * 512)
    assert ut.producerState == "paused"
    p.reactor.advance(0.51)
    assert ut.producerState == "producing"


def test_without_proxy_limit_rate_nothing_paces_the_upstream(tmp_path: Path) -> None:
    p = MemoryProxy(load_text(tmp_path / "t.conf", CONF.format(extra="")))
    p.connect_client(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream, ut = p.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n" + b"x" * 40000)
    assert ut.producerState == "producing"


def test_under_limit_rate_the_free_bytes_still_count_against_proxy_limit_rate() -> None:
    clock = Clock()
    source = HalfCloseTransport()
    reading = Pace(source, clock, 100)
    sending = Pace(reading, clock, 1000, free=1000)
    sending.sent(150)
    assert source.producerState == "paused", "limit_rate_after does not free the upstream's rate"
    clock.advance(0.51)
    assert source.producerState == "producing"
    sending.stop()
    clock.advance(5)
    assert not clock.getDelayedCalls()
