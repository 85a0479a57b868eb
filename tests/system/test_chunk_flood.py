"""
A flood of tiny chunks (issue 16): wstunnel.wire.bodies decodes a received
buffer in one pass and hands its sink one call per buffer however many
chunks it held, so the peer gets the body re-chunked in buffer-sized
pieces; a chunk size past nginx's bound is refused.  Deterministic tests of
the reader, then a raw-socket client and a counting backend on loopback.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import protocol, reactor

from support import aio, start_proxy, talk
from wstunnel.wire.bodies import LAST_CHUNK, BodyError, ChunkedBody

LIMIT = 4096
NGINX_MAX = 0x7FFFFFFFFFFFFFF  # the largest chunk size nginx 1.22.1 reads (measured)


def feed_all(reader: ChunkedBody, parts: list[bytes]) -> tuple[list[bytes], bytes | None]:
    """Each sink call, and what followed the body (None: not ended)."""
    calls: list[bytes] = []
    for i, part in enumerate(parts):
        rest = reader.feed(part, calls.append)
        if rest is not None:
            return calls, rest + b"".join(parts[i + 1:])
    return calls, None


def tiny_chunks(count: int, data: bytes = b"x") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(data), data) for _ in range(count))


@pytest.mark.parametrize(
    "wire",
    [
        tiny_chunks(5000),
        b"1;name=value\r\nx\r\n" * 3000,  # extensions
        b"1 \t\r\nx\r\n" * 3000,  # spaces before the CRLF
        b"0001\r\nx\r\n" * 3000,  # leading zeros
        b"2\r\n\r\n\r\n" * 3000,  # data that is a CRLF
        b"1\r\nx\r\n2\r\n\r\n\r\n" * 2000,  # both, alternating
        b"".join(b"%X\r\n%s\r\n" % (n % 40 + 1, b"y" * (n % 40 + 1)) for n in range(3000)),
    ],
    ids=["one-byte", "extensions", "spaces", "leading-zeros", "crlf-data", "alternating", "sizes-1-to-40"],
)
def test_the_sink_is_called_once_per_buffer_however_many_chunks_it_holds(wire: bytes) -> None:
    whole = wire + LAST_CHUNK + b"NEXT"
    parts = [whole[i:i + 1000] for i in range(0, len(whole), 1000)]
    calls, rest = feed_all(ChunkedBody(LIMIT), parts)
    assert rest == b"NEXT"
    assert len(calls) <= len(parts), "one sink call per buffer at most"
    assert b"".join(calls) == b"".join(_reference(wire))


def test_a_buffer_of_only_framing_calls_no_sink() -> None:
    reader = ChunkedBody(LIMIT)
    calls, _ = feed_all(reader, [b"5\r\n"])
    assert calls == []
    calls, rest = feed_all(reader, [b"hello\r\n0\r\n\r\n"])
    assert (calls, rest) == ([b"hello"], b"")


def test_half_a_million_one_byte_chunks_in_64k_buffers() -> None:
    data = bytes(range(256)) * 1953 + b"ab"  # 500,000 bytes
    wire = b"".join(b"1\r\n%s\r\n" % data[i:i + 1] for i in range(len(data))) + LAST_CHUNK
    size = 64 * 1024
    parts = [wire[i:i + size] for i in range(0, len(wire), size)]
    calls, rest = feed_all(ChunkedBody(LIMIT), parts)
    assert rest == b""
    assert b"".join(calls) == data
    assert len(calls) == len(parts) == 46


def test_data_before_a_framing_error_still_reaches_the_sink() -> None:
    calls: list[bytes] = []
    with pytest.raises(BodyError, match="longer than its size"):
        ChunkedBody(LIMIT).feed(tiny_chunks(100) + b"3\r\nabcX\r\n", calls.append)
    assert calls == [b"x" * 100 + b"abc"]


@pytest.mark.parametrize(
    "size",
    [b"%x" % (NGINX_MAX + 1), b"ffffffffffffffff", b"8000000000000000", b"0%x" % (NGINX_MAX + 1)],
)
def test_a_chunk_size_past_nginxs_bound_is_refused(size: bytes) -> None:
    for wire in (size + b"\r\nx", tiny_chunks(100) + size + b"\r\nx"):
        with pytest.raises(BodyError, match="over 2"):
            ChunkedBody(LIMIT).feed(wire, lambda data: None)


def test_the_largest_size_nginx_reads_is_read() -> None:
    reader = ChunkedBody(LIMIT)
    calls, rest = feed_all(reader, [b"%x\r\nabc" % NGINX_MAX])
    assert (calls, rest) == ([b"abc"], None)


# Many chunks, some odd, in random buffers: the same outcome as fed a byte at a time.
_data = st.one_of(st.binary(min_size=1, max_size=20), st.sampled_from([b"\r\n", b"a\r\nb", b"\r", b"\n", b"0\r\n\r\n"]))
_size = st.sampled_from([b"%x", b"%X", b"00%x", b"00000%x", b"%x;e=v", b"%x;", b"%x \t", b" %x", b"%x ;e", b"%x;\x01", b"-%x"])
_end = st.sampled_from([b"\r\n"] * 12 + [b"\n", b"x\r\n", b""])


@st.composite
def long_bodies(draw: st.DrawFn) -> bytes:
    body = b""
    for data in draw(st.lists(_data, max_size=120)):
        line = draw(_size).replace(b"%x", b"%x" % len(data)).replace(b"%X", b"%X" % len(data))
        body += line + b"\r\n" + data + draw(_end)
    return body + draw(st.sampled_from([LAST_CHUNK, b"0\r\nX-T: 1\r\n\r\n", b"0\r\nbad\r\n\r\n", b""])) + b"NEXT"


def _outcome(parts: list[bytes], limit: int) -> tuple[bytes, bytes | None] | str:
    calls: list[bytes] = []
    reader = ChunkedBody(limit)
    try:
        for i, part in enumerate(parts):
            rest = reader.feed(part, calls.append)
            if rest is not None:
                return b"".join(calls), rest + b"".join(parts[i + 1:])
    except BodyError as e:
        return str(e)
    return b"".join(calls), None


@settings(max_examples=300, deadline=None)
@given(body=long_bodies(), cuts=st.lists(st.integers(0, 3000), max_size=5), limit=st.sampled_from([7, 12, LIMIT]))
def test_many_chunks_in_any_buffers_read_as_a_byte_at_a_time(body: bytes, cuts: list[int], limit: int) -> None:
    points = sorted({min(c, len(body)) for c in cuts})
    parts = [body[a:b] for a, b in zip([0, *points], [*points, len(body)])]
    assert _outcome(parts, limit) == _outcome([body[i:i + 1] for i in range(len(body))], limit)


def _reference(wire: bytes) -> list[bytes]:
    """The data of well-formed chunks, read the plain way."""
    pos, out = 0, []
    while pos < len(wire):
        lf = wire.index(b"\r\n", pos)
        size = int(wire[pos:lf].split(b";")[0], 16)
        out.append(wire[lf + 2:lf + 2 + size])
        pos = lf + 4 + size
    return out


# Over loopback: a raw client sends many tiny chunks through the proxy.
CONF = """
server {{
    listen 127.0.0.1:0;
    access_log off;
    location / {{
        proxy_pass http://127.0.0.1:{port};
        proxy_http_version 1.1;
    }}
}}
"""


class CountingBackend(protocol.Protocol):
    """Reads one chunked request, counts the chunks it came in, and answers 200 once it has ended."""

    def connectionMade(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        head, _, body = self.received.partition(b"\r\n\r\n")
        if body.endswith(LAST_CHUNK):
            self.factory.bodies.append((head, _reference(body[:-len(LAST_CHUNK)])))
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            self.transport.loseConnection()


@pytest.fixture
def flood_proxy(tmp_path):
    factory = protocol.Factory.forProtocol(CountingBackend)
    factory.bodies = []
    backend = reactor.listenTCP(0, factory, interface="127.0.0.1")
    service, port = start_proxy(tmp_path, CONF.format(port=backend.getHost().port))
    yield factory, port
    service.stopService()
    backend.stopListening()


HEAD = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"


@pytest_twisted.ensureDeferred
async def test_many_tiny_chunks_reach_the_upstream_intact_in_few_large_ones(flood_proxy) -> None:
    factory, port = flood_proxy
    data = bytes(range(97, 123)) * 2000  # 52,000 one-byte chunks, 312 KB on the wire
    wire = HEAD + b"".join(b"1\r\n%s\r\n" % data[i:i + 1] for i in range(len(data))) + LAST_CHUNK
    answer = await aio(talk(port, wire))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    [(head, chunks)] = factory.bodies
    assert b"\r\nTransfer-Encoding: chunked" in head
    assert b"".join(chunks) == data
    assert len(chunks) <= len(data) // 100, f"{len(chunks)} chunks upstream for {len(data)} sent"


@pytest_twisted.ensureDeferred
async def test_a_chunk_size_past_the_bound_is_answered_400(flood_proxy) -> None:
    factory, port = flood_proxy
    answer = await aio(talk(port, HEAD + b"ffffffffffffffff\r\nabc"))
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert factory.bodies == []

