"""The one writer of response heads towards the client, and the Date value."""

from __future__ import annotations

from email.utils import formatdate

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstunnel.wire.framing import BodyMode, head_bytes, http_date, plan_response


def test_http_date_is_an_imf_fixdate() -> None:
    assert http_date(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"


@given(st.floats(min_value=0, max_value=4_102_444_800))
def test_http_date_matches_the_standard_library(now: float) -> None:
    assert http_date(now) == formatdate(int(now), usegmt=True).encode("ascii")


def test_http_date_changes_with_the_second() -> None:
    first = http_date(1000.2)
    assert http_date(1000.9) == first
    assert http_date(1001.0) != first


def test_head_bytes_without_headers() -> None:
    assert head_bytes(100, b"Continue", ()) == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_head_bytes_keeps_names_and_order() -> None:
    out = head_bytes(101, b"Switching Protocols", [(b"Upgrade", b"websocket"), (b"connection", b"upgrade")])
    assert out == b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nconnection: upgrade\r\n\r\n"


@pytest.mark.parametrize(
    ("version", "mode", "framing"),
    [(b"1.1", BodyMode.CHUNKED, b"Transfer-Encoding: chunked"), (b"1.0", BodyMode.CLOSE, None)],
)
def test_a_planned_head_parses(version: bytes, mode: BodyMode, framing: bytes | None) -> None:
    plan = plan_response(
        200, b"OK", [(b"Date", http_date(0))], request_method=b"GET", client_version=version, keep_alive=True
    )
    assert plan.mode is mode
    assert (framing in plan.head) if framing else b"Transfer-Encoding" not in plan.head
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
    client.receive_data(plan.head)
    event = client.next_event()
    assert isinstance(event, h11.Response) and event.status_code == 200
