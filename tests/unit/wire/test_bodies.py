"""
wstunnel.wire.bodies: the body readers, deterministically, and against h11 as an
oracle.  Whatever we accept h11 must accept with the same bytes; what we
refuse and h11 takes must break one of body.py's documented strictness
rules (tagged where the input is built).
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wstunnel.wire.bodies import (
    LAST_CHUNK,
    BodyError,
    ChunkedBody,
    LengthBody,
    UntilClose,
    chunk,
)

LIMIT = 4096


def run(reader, parts: list[bytes]) -> tuple[bytes, bytes | None]:
    """Feed ``parts`` in order; the decoded bytes and what followed the end (None: not ended)."""
    got: list[bytes] = []

    def sink(data: bytes) -> None:
        assert data, "the sink is never given empty bytes"
        got.append(data)

    for i, part in enumerate(parts):
        rest = reader.feed(part, sink)
        if rest is not None:
            return b"".join(got), rest + b"".join(parts[i + 1:])
    return b"".join(got), None


def test_length_body_splits_and_returns_what_follows() -> None:
    reader = LengthBody(5)
    assert run(reader, [b"he", b"llo", b"GET"]) == (b"hello", b"GET")
    assert reader.done


def test_length_body_exact_and_empty() -> None:
    assert run(LengthBody(3), [b"abc"]) == (b"abc", b"")
    assert LengthBody(0).done
    assert run(LengthBody(0), [b"next"]) == (b"", b"next")


def test_length_body_cut_short_is_an_error_at_eof() -> None:
    reader = LengthBody(4)
    run(reader, [b"ab"])
    with pytest.raises(BodyError, match="2 bytes missing"):
        reader.eof()


def test_until_close_takes_everything_and_ends_at_eof() -> None:
    reader = UntilClose()
    assert run(reader, [b"a", b"", b"b"]) == (b"ab", None)
    assert not reader.done
    reader.eof()
    assert reader.done


def test_chunked_body_with_extension_and_trailer() -> None:
    wire = b"4;name=value\r\nWiki\r\n5 \r\npedia\r\n0\r\nExpires: never\r\n\r\nNEXT"
    for split in range(len(wire) + 1):
        reader = ChunkedBody(LIMIT)
        assert run(reader, [wire[:split], wire[split:]]) == (b"Wikipedia", b"NEXT")
        assert reader.done


def test_chunk_encoding_round_trips() -> None:
    wire = b"".join([*chunk(b"abc"), *chunk(b"x" * 300), LAST_CHUNK])
    assert wire.startswith(b"3\r\nabc\r\n12c\r\n")
    assert run(ChunkedBody(LIMIT), [wire]) == (b"abc" + b"x" * 300, b"")


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (b"zz\r\nx\r\n0\r\n\r\n", "invalid chunk size"),
        (b"1\r\nxy0\r\n\r\n", "longer than its size"),
        (b"1\nx\r\n0\r\n\r\n", "bare LF"),
        (b"1\r\nx\n0\r\n\r\n", "bare LF"),
        (b"11111111111111111\r\n", "invalid chunk size"),
        (b"-1\r\n", "invalid chunk size"),
        (b"1;\x00\r\nx\r\n", "invalid chunk size"),
        (b"0\r\nbad trailer\r\n\r\n", "invalid trailer"),
        (b"1" * (LIMIT + 1), "line too long"),
        (b"0\r\n" + b"X: " + b"y" * LIMIT + b"\r\n", "trailer section too large"),
    ],
)
def test_chunked_body_refusals(wire: bytes, error: str) -> None:
    with pytest.raises(BodyError, match=error):
        run(ChunkedBody(LIMIT), [wire])


def test_chunked_body_holds_a_partial_line_within_the_limit() -> None:
    reader = ChunkedBody(8)
    reader.feed(b"0000", lambda data: None)
    with pytest.raises(BodyError, match="line too long"):
        reader.feed(b"00001", lambda data: None)


def test_chunked_body_cut_short_is_an_error_at_eof() -> None:
    reader = ChunkedBody(LIMIT)
    run(reader, [b"5\r\nabc"])
    with pytest.raises(BodyError, match="cut short"):
        reader.eof()


# The differential test.  Each piece says whether it breaks a rule only we hold.
STRICT = "strict"
_size = st.one_of(
    st.integers(0, 40).map(lambda n: (n, b"%x" % n, None)),
    st.integers(1, 40).map(lambda n: (n, b"%X" % n, None)),
    st.integers(1, 9).map(lambda n: (n, b"0" * 16 + b"%x" % n, STRICT)),  # over 16 digits
)
_ext = st.sampled_from([(b"", None), (b";a=b", None), (b";x", None), (b" ", None), (b";\x01", STRICT)])
_data_end = st.sampled_from([(b"\r\n", None), (b"\r\n", None), (b"XY", STRICT), (b"\n", STRICT)])
_trailer = st.sampled_from([(b"", None), (b"Foo: bar\r\n", None), (b"X-A: 1\r\nX-B: 2\r\n", None)])
_chunk = st.tuples(_size, _ext, _data_end)


@st.composite
def chunked_wire(draw) -> tuple[bytes, bool]:
    """A chunked body (maybe broken) and whether it breaks a strict-only rule."""
    strict = False
    wire = b""
    for (size, digits, tag), (ext, ext_tag), (end, end_tag) in draw(st.lists(_chunk, max_size=4)):
        if size == 0:
            continue
        strict |= STRICT in (tag, ext_tag, end_tag)
        wire += digits + ext + b"\r\n" + b"d" * size + end
    trailer, _ = draw(_trailer)
    wire += b"0\r\n" + trailer + b"\r\n"
    if draw(st.booleans()):
        junk = draw(st.binary(max_size=6))
        cut = draw(st.integers(0, len(wire)))
        wire = wire[:cut] + junk + wire[cut:]
        strict = strict or bool(junk)
    return wire + b"NEXT", strict


def h11_decode(wire: bytes, parts: list[bytes]) -> tuple[bytes, bytes | None] | None:
    """h11's reading of the same body: (data, what followed) or None when it refuses."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=LIMIT)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    got = b""
    try:
        assert isinstance(conn.next_event(), h11.Request)
        parts = [part for part in parts if part]  # b"" would tell h11 the connection closed
        for i, part in enumerate(parts):
            conn.receive_data(part)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Data):
                    got += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return got, bytes(conn.trailing_data[0]) + b"".join(parts[i + 1:])
    except h11.RemoteProtocolError:
        return None
    return got, None


@settings(max_examples=400, deadline=None)
@given(chunked_wire(), st.lists(st.integers(0, 200), max_size=4))
def test_chunked_body_agrees_with_h11(case: tuple[bytes, bool], cuts: list[int]) -> None:
    wire, strict = case
    points = sorted({min(c, len(wire)) for c in cuts})
    parts = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)])]
    try:
        ours = run(ChunkedBody(LIMIT), parts)
    except BodyError:
        ours = None
    theirs = h11_decode(wire, parts)
    if ours is not None and ours[1] is not None:
        assert theirs == ours
    elif ours is None and theirs is not None and theirs[1] is not None:
        assert strict, f"refused a body h11 reads and no strict rule explains it: {wire!r}"
