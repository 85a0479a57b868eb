"""core.headers.client_response_headers: the Upgrade of a 426 reaches the client, as nginx passes it."""

from __future__ import annotations

from wstunnel.core.headers import client_response_headers
from wstunnel.wire.response import ResponseHead

DATE = b"Mon, 07 Dec 2026 00:00:00 GMT"


def names(status: int, headers: tuple[tuple[bytes, bytes], ...]) -> list[bytes]:
    response = ResponseHead(status, b"", b"1.1", headers)
    return [n for n, _ in client_response_headers(response, request_method=b"GET", date=DATE)]


def test_a_426_keeps_its_upgrade_even_when_connection_names_it() -> None:
    assert b"Upgrade" in names(426, ((b"Upgrade", b"TLS/1.2"), (b"Connection", b"Upgrade")))
    assert b"Upgrade" in names(426, ((b"Upgrade", b"websocket"),))


def test_other_answers_still_drop_upgrade() -> None:
    assert b"Upgrade" not in names(200, ((b"Upgrade", b"h2c"),))
    assert b"Upgrade" not in names(403, ((b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")))
