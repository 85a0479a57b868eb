"""
Byte rates by pause and resume on a task.Clock: wstunnel_tunnel_rate on a
tunnel's two directions, limit_rate / limit_rate_after and
proxy_limit_rate on a response.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from support import HalfCloseTransport, MemoryProxy, load_text, switch_answer, upgrade_request
from wstunnel.config.model import Timeouts
from wstunnel.net.pace import Pace, RatedTunnel, tunnel_type
from wstunnel.net.tunnel import Tunnel


def rated(rate: int) -> tuple[RatedTunnel, HalfCloseTransport, HalfCloseTransport, Clock]:
    clock = Clock()
    client, upstream = HalfCloseTransport(), HalfCloseTransport()
    tunnel = RatedTunnel(
        rate=rate,
        client=client,
        upstream=upstream,
        to_client=client.write,
        to_upstream=upstream.write,
        clock=clock,
        timeouts=Timeouts(),
        on_end=lambda t: None,
    )
    tunnel.start(b"", b"")
    return tunnel, client, upstream, clock


def test_a_direction_ahead_of_its_rate_is_paused_until_the_bucket_refills() -> None:
    tunnel, client, upstream, clock = rated(1000)
    tunnel.from_client(b"x" * 1000)
    assert client.producerState == "producing", "one second of burst"
    tunnel.from_client(b"x" * 500)
    assert client.producerState == "paused"
    assert upstream.producerState == "producing", "the other direction is not held"
    clock.advance(0.49)
    assert client.producerState == "paused"
    clock.advance(0.02)
    assert client.producerState == "producing"


def test_a_full_consumer_keeps_the_source_paused_after_the_refill() -> None:
    tunnel, client, upstream, clock = rated(1000)
    tunnel.from_client(b"x" * 1500)
    upstream.producer.pauseProducing()
    clock.advance(1)
    assert client.producerState == "paused", "the upstream is still full"
    upstream.producer.resumeProducing()
    assert client.producerState == "producing"


def test_a_refill_after_the_close_resumes_nothing() -> None:
    tunnel, client, _, clock = rated(1000)
    tunnel.from_client(b"x" * 1500)
    tunnel.client_eof()
    clock.advance(5)
    assert client.producerState == "paused"
    assert not [c for c in clock.getDelayedCalls() if c.func.__qualname__.startswith("Pace.")]


def test_limit_rate_after_lets_the_first_bytes_through() -> None:
    clock = Clock()
    source = HalfCloseTransport()
    pace = Pace(source, clock, 100, free=1000)
    pace.sent(1000)
    pace.sent(100)
    assert source.producerState == "producing"
    pace.sent(50)
    assert source.producerState == "paused"
    clock.advance(0.5)
    assert source.producerState == "producing"


CONF = """
server {{
    listen 127.0.0.1:8080;
    location / {{
        proxy_pass http://127.0.0.1:9000;
        {extra}
    }}
}}
"""


def test_only_a_location_with_a_tunnel_rate_gets_a_rated_tunnel(tmp_path: Path) -> None:
    config = load_text(tmp_path / "t.conf", CONF.format(extra="wstunnel_tunnel_rate 64k;"))
    assert tunnel_type(config.servers[0].locations[0]).keywords == {"rate": 65536}  # type: ignore[union-attr]
    plain = load_text(tmp_path / "p.conf", CONF.format(extra=""))
    assert tunnel_type(plain.servers[0].locations[0]) is Tunnel


@pytest.mark.parametrize(
    "extra, free, over, refill",
    [
        ("limit_rate 1k; limit_rate_after 1k;", 2048, 1024, 1.01),  # limit_rate_after, then one second of burst
        ("proxy_limit_rate 1k;", 1024, 512, 0.51),  # reading from the upstream: one second of burst
        ("limit_rate 10k; limit_rate_after 10k; proxy_limit_rate 1k;", 1024, 512, 0.51),  # the slower holds
    ],
)
def test_a_rate_paces_the_upstream_of_a_response(tmp_path: Path, extra: str, free: int, over: int, refill: float) -> None:
    p = MemoryProxy(load_text(tmp_path / "t.conf", CONF.format(extra=extra)))
    p.connect_client(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream, ut = p.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * free)
    assert ut.producerState == "producing"
    upstream.dataReceived(b"x" * over)
    assert ut.producerState == "paused"
    p.reactor.advance(refill - 0.02)
    assert ut.producerState == "paused"
    p.reactor.advance(0.02)
    assert ut.producerState == "producing"


def test_without_a_rate_nothing_paces_the_upstream(tmp_path: Path) -> None:
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


def test_a_tunnel_of_a_rated_location_is_paced_through_the_client_protocol(tmp_path: Path) -> None:
    p = MemoryProxy(load_text(tmp_path / "t.conf", CONF.format(extra="wstunnel_tunnel_rate 1k;")))
    client, ct = p.connect_client(upgrade_request())
    upstream, ut = p.upstream()
    upstream.dataReceived(switch_answer(upgrade_request()))
    assert ct.value().startswith(b"HTTP/1.1 101 ")
    client.dataReceived(b"x" * 1500)
    assert ut.value().endswith(b"x" * 1500) and ct.producerState == "paused"
    p.reactor.advance(0.6)
    assert ct.producerState == "producing"
