"""The 101 check against the offer the upstream request carries, without reading the client's head for it."""

from __future__ import annotations

from wstunnel.core.headers import check_switch, upgrade_offer
from wstunnel.wire.request import RequestHead
from wstunnel.wire.response import ResponseHead

KEY = (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ==")
GOOD_101 = ResponseHead(101, b"", b"1.1", (
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
))


def test_a_carried_offer_is_what_the_101_is_checked_against() -> None:
    head = RequestHead(b"GET", b"/", b"1.1", (KEY,))  # no Connection or Upgrade of its own
    assert upgrade_offer(head) == ()
    assert check_switch(head, GOOD_101) == "the client did not ask to upgrade to a protocol allowed here"
    assert check_switch(head, GOOD_101, offer=(b"websocket",)) is None
    assert "did not offer" in check_switch(head, GOOD_101, offer=(b"tcp",))  # type: ignore[operator]


def test_the_101_headers_are_found_in_any_order_and_spelling() -> None:
    head = RequestHead(b"GET", b"/", b"1.1", (KEY,))
    shuffled = ResponseHead(101, b"", b"1.1", tuple(reversed([(n.upper(), v) for n, v in GOOD_101.headers])))
    assert check_switch(head, shuffled, offer=(b"websocket",)) is None
    no_accept = ResponseHead(101, b"", b"1.1", GOOD_101.headers[:2])
    assert check_switch(head, no_accept, offer=(b"websocket",)) == "Sec-WebSocket-Accept does not match the client's key"
