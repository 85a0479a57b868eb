"""
The tunnel's rules, deterministically: StringTransports for the two
connections and a task.Clock for every timer.
"""

from __future__ import annotations

from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from zope.interface import directlyProvides

from support import HalfCloseTransport
from wstunnel.net.fastwrite import direct_writer
from wstunnel.config.model import Timeouts
from wstunnel.net.tunnel import Tunnel, TunnelEnd

TIMEOUTS = Timeouts(connect=5.0, read=30.0, send=7.0, client_send=11.0)


def make(client_early: bytes = b"", upstream_early: bytes = b""):
    clock = Clock()
    client = HalfCloseTransport()
    upstream = HalfCloseTransport()
    ended: list[Tunnel] = []
    tunnel = Tunnel(
        client=client, upstream=upstream, to_client=direct_writer(client), to_upstream=direct_writer(upstream),
        clock=clock, timeouts=TIMEOUTS, on_end=ended.append,
    )
    tunnel.start(client_early, upstream_early)
    return tunnel, client, upstream, clock, ended


def test_early_bytes_go_first_and_in_order() -> None:
    tunnel, client, upstream, _, _ = make(client_early=b"frame-1", upstream_early=b"hello")
    tunnel.from_client(b"frame-2")
    tunnel.from_upstream(b"world")
    assert upstream.value() == b"frame-1frame-2"
    assert client.value() == b"helloworld"
    assert (tunnel.client_bytes, tunnel.upstream_bytes) == (14, 10)


def test_each_transport_is_the_streaming_producer_of_the_other() -> None:
    _, client, upstream, _, _ = make()
    assert client.streaming is True and upstream.streaming is True
    client.producer.pauseProducing()
    assert upstream.producerState == "paused"
    assert client.producerState == "producing"
    upstream.producer.pauseProducing()
    assert client.producerState == "paused"


def test_pause_is_idempotent_and_one_resume_restores_reading() -> None:
    _, client, upstream, _, _ = make()
    for _ in range(5):
        client.producer.pauseProducing()
    client.producer.resumeProducing()
    assert upstream.producerState == "producing"


def test_client_that_stops_reading_is_aborted_after_send_timeout() -> None:
    tunnel, client, upstream, clock, _ = make()
    client.producer.pauseProducing()
    clock.advance(TIMEOUTS.client_send - 0.5)
    assert not client.disconnecting
    clock.advance(0.5)
    assert client.disconnected, "a client that does not read is aborted"
    assert upstream.disconnecting
    assert tunnel.reason is TunnelEnd.CLIENT_SEND_TIMEOUT


def test_resume_before_the_send_timeout_cancels_it() -> None:
    tunnel, client, _, clock, _ = make()
    client.producer.pauseProducing()
    clock.advance(TIMEOUTS.client_send - 1)
    client.producer.resumeProducing()
    clock.advance(TIMEOUTS.client_send)
    assert not tunnel.closing
    assert not client.disconnected


def test_upstream_that_stops_reading_is_aborted_after_proxy_send_timeout() -> None:
    tunnel, client, upstream, clock, _ = make()
    upstream.producer.pauseProducing()
    clock.advance(TIMEOUTS.send)
    assert upstream.disconnected
    assert client.disconnecting
    assert tunnel.reason is TunnelEnd.UPSTREAM_SEND_TIMEOUT


def test_idle_timeout_closes_both_sides() -> None:
    tunnel, client, upstream, clock, _ = make()
    clock.advance(TIMEOUTS.read - 0.1)
    assert not tunnel.closing
    clock.advance(0.1)
    assert tunnel.reason is TunnelEnd.IDLE_TIMEOUT
    assert client.disconnecting and upstream.disconnecting
    assert client.producer is None and upstream.producer is None


def test_traffic_in_either_direction_rearms_the_idle_timeout() -> None:
    tunnel, _, _, clock, _ = make()
    clock.advance(TIMEOUTS.read - 1)
    tunnel.from_client(b"x")
    clock.advance(TIMEOUTS.read - 1)
    tunnel.from_upstream(b"y")
    clock.advance(TIMEOUTS.read - 1)
    assert not tunnel.closing
    clock.advance(1)
    assert tunnel.reason is TunnelEnd.IDLE_TIMEOUT


def test_client_fin_is_passed_on_and_the_other_direction_keeps_flowing() -> None:
    tunnel, client, upstream, _, _ = make()
    tunnel.client_eof()
    assert upstream.write_closed
    assert upstream.producer is None, "the client no longer feeds the upstream"
    assert not upstream.disconnecting and not client.disconnecting
    tunnel.from_upstream(b"late answer")
    assert client.value() == b"late answer"
    assert client.producer is not None, "backpressure still holds towards the client"


def test_upstream_fin_is_passed_on_to_the_client() -> None:
    tunnel, client, upstream, _, _ = make()
    tunnel.upstream_eof()
    assert client.write_closed
    tunnel.from_client(b"more")
    assert upstream.value() == b"more"


def test_both_fins_close_both_connections_and_the_first_fin_is_the_reason() -> None:
    tunnel, client, upstream, _, _ = make()
    tunnel.client_eof()
    tunnel.upstream_eof()
    assert client.disconnecting and upstream.disconnecting
    assert tunnel.reason is TunnelEnd.CLIENT_CLOSED
    tunnel, _, _, _, _ = make()
    tunnel.upstream_eof()
    tunnel.client_eof()
    assert tunnel.reason is TunnelEnd.UPSTREAM_CLOSED


def test_a_side_lost_after_the_other_half_closed_keeps_the_first_reason() -> None:
    tunnel, _, _, _, ended = make()
    tunnel.client_eof()
    tunnel.upstream_lost()
    tunnel.client_lost()
    assert ended == [tunnel] and tunnel.reason is TunnelEnd.CLIENT_CLOSED


def test_fin_towards_a_tls_side_becomes_a_close() -> None:
    clock = Clock()
    client = HalfCloseTransport()
    upstream = HalfCloseTransport()
    directlyProvides(upstream, ISSLTransport)
    tunnel = Tunnel(client=client, upstream=upstream, to_client=direct_writer(client),
                    to_upstream=direct_writer(upstream), clock=clock, timeouts=TIMEOUTS, on_end=lambda t: None)
    tunnel.start(b"", b"")
    tunnel.client_eof()
    assert not upstream.write_closed
    assert upstream.disconnecting and client.disconnecting


def test_loss_of_one_side_closes_the_other_after_unregistering_it() -> None:
    tunnel, client, upstream, clock, ended = make()
    upstream.producer.pauseProducing()  # the client is paused: upstream not reading
    tunnel.upstream_lost()
    assert client.producer is None, "a dead producer must not keep the client open (P1)"
    assert client.disconnecting
    assert ended == []
    clock.advance(TIMEOUTS.client_send)
    assert client.disconnected, "the abort timer ends a close that never completes"
    tunnel.client_lost()
    assert ended == [tunnel]


def test_abort_timer_is_cancelled_when_the_close_completes() -> None:
    tunnel, client, _, clock, ended = make()
    tunnel.upstream_lost()
    tunnel.client_lost()
    assert ended == [tunnel]
    assert clock.getDelayedCalls() == []
    assert not client.disconnected
