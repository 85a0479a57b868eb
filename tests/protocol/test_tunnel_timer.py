"""
The tunnel's one timer: traffic only notes the time, the timer moves to the
new idle deadline when it fires, and a close carries each side's abort on
the same timer, each at its own grace.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from support import HalfCloseTransport
from wstunnel.config.model import Timeouts
from wstunnel.net.fastwrite import direct_writer
from wstunnel.net.tunnel import Tunnel, TunnelEnd

TIMEOUTS = Timeouts(connect=5.0, read=30.0, send=7.0, client_send=11.0)


def make():
    clock = Clock()
    client = HalfCloseTransport()
    upstream = HalfCloseTransport()
    tunnel = Tunnel(
        client=client, upstream=upstream, to_client=direct_writer(client), to_upstream=direct_writer(upstream),
        clock=clock, timeouts=TIMEOUTS, on_end=lambda t: None,
    )
    tunnel.start(b"", b"")
    return tunnel, client, upstream, clock


def test_traffic_leaves_the_timer_alone_and_the_tunnel_holds_one() -> None:
    tunnel, _, _, clock = make()
    (timer,) = clock.getDelayedCalls()
    due = timer.getTime()
    for _ in range(3):
        clock.advance(1)
        tunnel.from_client(b"x")
        tunnel.from_upstream(b"y")
    assert clock.getDelayedCalls() == [timer] and timer.getTime() == due
    clock.advance(due - clock.seconds())
    assert not tunnel.closing
    assert len(clock.getDelayedCalls()) == 1, "moved to the deadline of the last traffic"
    clock.advance(3)
    assert tunnel.reason is TunnelEnd.IDLE_TIMEOUT


def test_a_lingering_close_aborts_each_side_at_its_own_grace_on_one_timer() -> None:
    tunnel, client, upstream, clock = make()
    tunnel.client_eof()
    tunnel.upstream_eof()
    assert tunnel.closing and len(clock.getDelayedCalls()) == 1
    clock.advance(TIMEOUTS.send)
    assert upstream.disconnected and not client.disconnected
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(TIMEOUTS.client_send - TIMEOUTS.send)
    assert client.disconnected
    assert clock.getDelayedCalls() == []


def test_a_stalled_side_is_aborted_at_once_and_the_other_keeps_its_grace() -> None:
    tunnel, client, upstream, clock = make()
    upstream.producer.pauseProducing()  # the client is paused: the upstream does not read
    clock.advance(TIMEOUTS.send)
    assert tunnel.reason is TunnelEnd.UPSTREAM_SEND_TIMEOUT and upstream.disconnected
    assert client.disconnecting and not client.disconnected
    clock.advance(TIMEOUTS.client_send - 0.5)
    assert not client.disconnected
    clock.advance(0.5)
    assert client.disconnected
