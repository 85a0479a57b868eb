"""wire.heads.HeadGate: the early refusal of bytes that cannot begin a request line, and the held bytes consumed from the front."""

from __future__ import annotations

import pytest

from wstunnel.wire.errors import RequestError
from wstunnel.wire.heads import HeadGate, HeadLimits

LIMITS = HeadLimits.for_buffers(4, 8192)


def refusal(pieces: list[bytes]) -> tuple[int, int] | None:
    """(status, pieces fed) at the refusal, or None when the gate is still waiting."""
    gate = HeadGate(LIMITS, request=True)
    for fed, piece in enumerate(pieces, 1):
        try:
            assert gate.feed(piece) is None
        except RequestError as e:
            return e.status, fed
    return None


@pytest.mark.parametrize(
    "start",
    [b"\x81", b"\x16\x03\x01", b"g", b"GeT", b" ", b"GET\t", b"\r\n\x00", b"\r\rGET", b"G\rE"],
)
def test_a_byte_that_cannot_be_part_of_a_method_is_refused_at_once(start: bytes) -> None:
    assert refusal([start]) == (400, 1)
    assert refusal([start[i:i + 1] for i in range(len(start))])[0] == 400  # type: ignore[index]


@pytest.mark.parametrize("start", [b"", b"\r", b"\r\n", b"\r\n\r", b"GET", b"GET\r", b"M-SEARCH", b"GET ", b"GET /x\x01"])
def test_what_may_still_begin_a_request_waits(start: bytes) -> None:
    assert refusal([start]) is None


def test_the_verdict_is_the_same_whole_or_byte_by_byte() -> None:
    line = b"get /" + b"a" * 9000 + b" HTTP/1.1\r\n"
    assert refusal([line]) == (400, 1)
    assert refusal([line[i:i + 1] for i in range(len(line))]) == (400, 1), "at the first byte, as nginx"
    long_method = b"G" * 9000
    assert refusal([long_method + b" / HTTP/1.1\r\n"])[0] == refusal([long_method])[0] == 414


def test_held_bytes_are_consumed_from_the_front() -> None:
    gate = HeadGate(LIMITS, request=True)
    gate.push(b"bodyGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert gate.peek(4) == b"body"
    gate.drop(4)
    assert gate.feed(b"") == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    gate.push(b"x" * 100_000)
    gate.clear()
    assert gate.pending == 0 and gate.peek(10) == b""
