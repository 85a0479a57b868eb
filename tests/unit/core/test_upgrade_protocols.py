"""
proxy_upgrade_protocols in the core: which offered upgrades go upstream,
and which 101 may open a tunnel.  By default only websocket, whose 101 is
checked against the client's key; another protocol only where the config
names it, and its 101 must name exactly a token the client offered.
"""

from __future__ import annotations

import pytest

from wstunnel.config.model import DEFAULT_UPGRADE_PROTOCOLS
from wstunnel.core.headers import accept_key, check_switch, upgrade_offer
from wstunnel.wire.request import RequestHead
from wstunnel.wire.response import ResponseHead

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
WEBSOCKET = ((b"Sec-WebSocket-Key", KEY), (b"Sec-WebSocket-Version", b"13"))


def offering(protocols: bytes, *extra: tuple[bytes, bytes]) -> RequestHead:
    headers = ((b"Host", b"h"), (b"Upgrade", protocols), (b"Connection", b"keep-alive, Upgrade"), *extra)
    return RequestHead(b"GET", b"/", b"1.1", headers)


def switch(protocol: bytes, *extra: tuple[bytes, bytes]) -> ResponseHead:
    headers = ((b"Upgrade", protocol), (b"Connection", b"Upgrade"), *extra)
    return ResponseHead(101, b"Switching Protocols", b"1.1", headers)


# Offers.


def test_the_default_allows_websocket_alone() -> None:
    assert DEFAULT_UPGRADE_PROTOCOLS == {b"websocket"}
    assert upgrade_offer(offering(b"websocket")) == (b"websocket",)
    assert upgrade_offer(offering(b"foo")) == ()
    assert upgrade_offer(offering(b"tcp, WebSocket, SPDY/3.1")) == (b"WebSocket",)


@pytest.mark.parametrize(
    ("allowed", "offer", "passed"),
    [
        ({b"websocket", b"tcp"}, b"tcp", (b"tcp",)),
        ({b"websocket", b"tcp"}, b"TCP", (b"TCP",)),
        ({b"tcp"}, b"tcp/2", (b"tcp/2",)),  # a name allows every version
        ({b"spdy/3.1"}, b"SPDY/3.1", (b"SPDY/3.1",)),
        ({b"spdy/3.1"}, b"SPDY/3", ()),  # a version allows that one
        ({b"spdy/3.1"}, b"SPDY", ()),
        ({b"foo/2"}, b"foo, foo/2, bar", (b"foo/2",)),
        ({b"tcp"}, b"websocket", ()),  # a list without websocket refuses it
        ({b"foo", b"bar"}, b"bar, foo", (b"bar", b"foo")),  # the client's order
    ],
)
def test_only_allowed_protocols_are_offered_upstream(
    allowed: set[bytes], offer: bytes, passed: tuple[bytes, ...]
) -> None:
    assert upgrade_offer(offering(offer), allowed) == passed


@pytest.mark.parametrize("offer", [b"h2c", b"H2C", b"h2c/1", b"h2c, h2c"])
def test_h2c_is_never_offered_even_if_allowed(offer: bytes) -> None:
    assert upgrade_offer(offering(offer), {b"h2c", b"websocket"}) == ()


# 101s.


def test_a_websocket_101_needs_its_accept() -> None:
    good = (b"Sec-WebSocket-Accept", accept_key(KEY))
    assert check_switch(offering(b"websocket", *WEBSOCKET), switch(b"websocket", good)) is None
    reason = check_switch(offering(b"websocket", *WEBSOCKET), switch(b"websocket"))
    assert reason is not None and "Accept" in reason


def test_a_websocket_101_still_needs_its_accept_when_other_protocols_are_allowed() -> None:
    reason = check_switch(offering(b"websocket", *WEBSOCKET), switch(b"WebSocket"), {b"websocket", b"tcp"})
    assert reason is not None and "Accept" in reason


def test_an_echoed_foo_is_refused_by_default() -> None:
    reason = check_switch(offering(b"foo"), switch(b"foo"))
    assert reason == "the client did not ask to upgrade to a protocol allowed here"


@pytest.mark.parametrize(
    ("allowed", "offer", "chosen"),
    [
        ({b"foo"}, b"foo", b"foo"),
        ({b"foo"}, b"foo", b"FOO"),
        ({b"tcp"}, b"tcp/2", b"TCP/2"),
        ({b"spdy/3.1", b"websocket"}, b"websocket, SPDY/3.1", b"spdy/3.1"),
    ],
)
def test_an_allowed_protocol_tunnels_on_the_token_offered(allowed: set[bytes], offer: bytes, chosen: bytes) -> None:
    assert check_switch(offering(offer), switch(chosen), allowed) is None


@pytest.mark.parametrize(
    ("allowed", "offer", "chosen", "reason"),
    [
        ({b"foo"}, b"foo", b"bar", "did not offer"),
        ({b"foo"}, b"foo", b"foo/2", "did not offer"),  # not the token offered
        ({b"tcp"}, b"tcp/2", b"tcp", "did not offer"),
        ({b"tcp"}, b"tcp/2", b"tcp/3", "did not offer"),
        ({b"foo", b"bar"}, b"foo, bar", b"foo, bar", "not one"),
        ({b"foo"}, b"foo, bar", b"bar", "did not offer"),  # offered but not allowed
        ({b"foo"}, b"foo", b"websocket", "did not offer"),
        ({b"foo"}, b"foo", b"h2c", "did not offer"),
        ({b"foo", b"h2c"}, b"h2c", b"h2c", "did not ask"),
    ],
)
def test_a_101_naming_another_token_is_refused(
    allowed: set[bytes], offer: bytes, chosen: bytes, reason: str
) -> None:
    found = check_switch(offering(offer), switch(chosen), allowed)
    assert found is not None and reason in found


def test_an_allowed_protocol_still_needs_upgrade_in_connection() -> None:
    response = ResponseHead(101, b"", b"1.1", ((b"Upgrade", b"foo"), (b"Connection", b"keep-alive")))
    found = check_switch(offering(b"foo"), response, {b"foo"})
    assert found is not None and "Connection" in found
