"""
The client side of the wire against h11 as an oracle: request bytes, split
anywhere, through the head gate (:func:`wstunnel.wire.heads.check_request_head`)
and the body reader the client protocol picks for the head, and through an
``h11`` server connection.

Whenever we accept a request, h11 accepts it with the same method, target,
version, headers, body bytes and bytes after it.  Whenever we refuse what
h11 takes (or still waits on), the refusal is one of the strictness rules
that gate.py and body.py document, named in ``STRICTER`` below: each is
shown on its own with an example h11 takes.  h11 is only a test oracle here;
nothing on the request path runs it.
"""

from __future__ import annotations

import re

import h11
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from support import split_at
from wstunnel.wire.bodies import BodyError
from wstunnel.wire.errors import RequestError
from wstunnel.net.upload import body_reader as _body_reader
from wstunnel.wire.heads import HeadGate, HeadLimits, Http2Preface, check_request_head

LIMITS = HeadLimits.for_buffers(4, 256)

# Where we refuse what h11 takes: the detail of our refusal names the rule.
STRICTER = {
    "bare LF in a head": r"bare LF in request head\Z",
    "obs-fold": r"obsolete line folding in header\Z",
    "control bytes h11 lets through (\\x01-\\x08, \\x0e-\\x1f, \\x7f)": r"control character in header ",
    "one Content-Length of 1-18 digits": r"(duplicate|invalid) Content-Length",
    "Content-Length with Transfer-Encoding": r"Content-Length with Transfer-Encoding\Z",
    "Transfer-Encoding needs HTTP/1.1": r"Transfer-Encoding in an HTTP/1\.0 request\Z",
    "HTTP/1.0 and HTTP/1.1 only": r"HTTP/[0-9.]+ is not supported\Z",
    "HTTP/2 preface": r"HTTP/2 preface\Z",
    "head size limits": r"(request line too long|header line too long|request head too large|more than \d+ header lines)\Z",
    "CRLF in a chunked body": r"bare LF in chunked body\Z",
    "chunk size of 1-16 hex digits, extension of visible bytes": r"invalid chunk size line ",
    "trailer lines are header lines": r"invalid trailer line ",
    "origin-form or absolute-form target, as nginx": r"request target .* is neither a path nor an absolute URL\Z",
    "CONNECT and TRACE are not allowed, as nginx": r"(CONNECT|TRACE) method is not allowed\Z",
    "a method of capitals, '_' and '-', as nginx": r"method .* is not capitals, '_' and '-'\Z",
}
_STRICTER = re.compile("|".join(f"(?:{rule})" for rule in STRICTER.values()))


def ours(pieces: list[bytes]) -> tuple:
    """("accepted", head, body, rest) | ("refused", detail) | ("incomplete",)."""
    gate = HeadGate(LIMITS, request=True)
    head = body = rest = None
    got: list[bytes] = []
    try:
        for piece in pieces:
            if rest is not None:
                rest += piece
                continue
            if head is None:
                raw = gate.feed(piece)
                if raw is None:
                    continue
                head = check_request_head(raw, LIMITS)
                body = _body_reader(head, LIMITS)
                piece = gate.take_rest()
            rest = body.feed(piece, got.append)
    except (RequestError, BodyError) as e:
        return ("refused", e.detail if isinstance(e, RequestError) else str(e))
    except Http2Preface:
        return ("refused", "HTTP/2 preface")
    if rest is None:
        return ("incomplete",)
    return ("accepted", head, b"".join(got), rest)


def oracle(pieces: list[bytes]) -> tuple:
    """
    The same through h11: ("accepted", request, body, trailing) |
    ("refused",) | ("incomplete",).  The empty lines before a request line
    that RFC 9112 section 2.2 lets a server ignore (the gate does) are taken
    off first: h11 refuses them.
    """
    skip = len(b"".join(pieces)) - len(_after_empty_lines(b"".join(pieces)))
    conn = h11.Connection(h11.SERVER)
    request = None
    got: list[bytes] = []
    ended = False
    for piece in pieces:
        piece, skip = piece[skip:], max(0, skip - len(piece))
        if not piece:
            continue
        conn.receive_data(piece)
        while not ended:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return ("refused",)
            if event is h11.NEED_DATA:
                break
            if type(event) is h11.Request:
                request = event
            elif type(event) is h11.Data:
                got.append(bytes(event.data))
            else:
                assert type(event) is h11.EndOfMessage
                ended = True
    if not ended:
        return ("incomplete",)
    return ("accepted", request, b"".join(got), conn.trailing_data[0])


def _after_empty_lines(data: bytes) -> bytes:
    while data.startswith(b"\r\n"):
        data = data[2:]
    return data


def _h11_headers(request: h11.Request) -> list[tuple[bytes, bytes]]:
    """h11's headers less those nginx ignores (a name with a byte other than a letter, digit or "-")."""
    return [(n, v) for n, v in request.headers.raw_items() if re.fullmatch(rb"[A-Za-z0-9-]+", n)]


def _our_headers(head) -> list[tuple[bytes, bytes]]:
    """h11 hands Transfer-Encoding lower-cased; every other value as sent."""
    return [(n, v.lower() if n.lower() == b"transfer-encoding" else v) for n, v in head.headers]


def check(pieces: list[bytes]) -> None:
    mine, theirs = ours(pieces), oracle(pieces)
    if mine[0] == "accepted":
        assert theirs[0] == "accepted", (mine, theirs)
        _, head, body, rest = mine
        _, request, their_body, trailing = theirs
        assert (head.method, head.target, head.http_version) == (request.method, request.target, request.http_version)
        assert _our_headers(head) == _h11_headers(request)
        assert (body, rest) == (their_body, trailing)
    elif mine[0] == "refused" and theirs[0] != "refused":
        assert _STRICTER.match(mine[1]), f"refused {mine[1]!r}, which h11 takes ({theirs[0]}), by no documented rule"
    if theirs[0] == "accepted":
        assert mine[0] != "incomplete", "h11 read a whole request where we wait for more"


def _mostly(good: list, odd: list, odds: int = 10) -> st.SearchStrategy:
    """One of ``good`` about ``odds - 1`` times in ``odds``, else one of ``odd``."""
    return st.sampled_from(good * ((odds - 1) * len(odd) // len(good) + 1) + odd)


METHODS = _mostly([b"GET", b"POST", b"PUT"], [b"G:T", b"", b"GET ", b"CONNECT", b"TRACE", b"get", b"G3T", b"M-SEARCH"])
TARGETS = _mostly([b"/", b"/a?b=c", b"http://h/x", b"/a%20b", b"/~!$&'()*+,;="],
                  [b"/\x80", b"/\x7f", b"/\x01", b"/ a", b"*", b"h:443"])
VERSIONS = _mostly([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1", b"HTTP/1.1 "])
EOLS = _mostly([b"\r\n"], [b"\n", b"\r", b"\r\r\n"])
HEADERS = st.builds(
    lambda name, sep, value, eol: name + sep + value + eol,
    _mostly([b"Host", b"host", b"Expect", b"X-A", b"Connection", b"x_y", b"Content-Length", b"Transfer-Encoding"],
            [b"Bad Name", b"", b"X\x80", b"X-A ", b" X-A", b" folded"]),
    _mostly([b": ", b":", b":\t"], [b" : ", b"  ", b""]),
    _mostly([b"a", b"", b" a ", b"a\tb", b"caf\xc3\xa9", b"100-continue", b"close", b"keep-alive", b"3", b"chunked"],
            [b"a\x00b", b"a\x01b", b"a\x0bb", b"a\x7fb", b"3, 3", b"-1", b"1" * 19, b"1" * 21, b"Chunked",
             b"gzip, chunked", b"chunked, chunked"]),
    EOLS,
)
LAST_CHUNKS = ([b"0\r\n\r\n", b"0\r\nX-T: 1\r\n\r\n", b"0;e=1\r\n\r\n", b"000\r\n\r\n"],
               [b"0\r\n folded\r\n\r\n", b"0\r\nX-T: 1\n\n", b"0\r\nX-T: a\x01\r\n\r\n", b"0\n\n", b"0\r\n",
                b"0\r\nX-T: 1\r\n\n", b"0\r\nX-T\r\n\r\n"])
CHUNK_SIZES = ([b"%x", b"%X", b"%x;e=v", b"%x \t", b"000%x"],
               [b"%x;\x01", b" %x", b"0" * 17 + b"%x", b"%x\n", b"g", b"%x ;e", b"-%x", b"0x%x"])
CHUNK_ENDS = ([b"\r\n"], [b"\n", b"x\r\n", b"", b"\r", b"\r\r\n"])
NEXT = _mostly([b"", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\x81\x05hello"], [b"\r\n", b"3\r\nabc\r\n"])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A request line, header lines, a body framed as the head says (mostly), and what follows."""
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b""
    lines = draw(st.lists(HEADERS, max_size=4))
    if draw(st.integers(0, 4)):
        lines.insert(draw(st.integers(0, len(lines))), b"Host: a\r\n")
    if framing == "length":
        data = draw(st.binary(max_size=20))
        size = len(data) + draw(_mostly([0], [1, -1]) if data else st.just(0))
        lines.insert(draw(st.integers(0, len(lines))), b"Content-Length: %d\r\n" % size)
        body = data
    elif framing == "chunked":
        lines.insert(draw(st.integers(0, len(lines))), b"Transfer-Encoding: chunked\r\n")
        body = draw(chunked_bodies(10))
    lead = draw(_mostly([b""], [b"\r\n", b"\r\n\r\n", b"\n"]))
    line = draw(METHODS) + b" " + draw(TARGETS) + b" " + draw(VERSIONS) + draw(EOLS)
    return lead + line + b"".join(lines) + draw(EOLS) + body + draw(NEXT)


@st.composite
def chunked_bodies(draw: st.DrawFn, odds: int) -> bytes:
    """Chunks and a last chunk, each part odd about once in ``odds``."""
    body = b""
    for data in draw(st.lists(st.binary(min_size=1, max_size=12), max_size=3)):
        size = draw(_mostly(*CHUNK_SIZES, odds)).replace(b"%x", b"%x" % len(data)).replace(b"%X", b"%X" % len(data))
        body += size + b"\r\n" + data + draw(_mostly(*CHUNK_ENDS, odds))
    return body + draw(_mostly(*LAST_CHUNKS, odds))


cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=6)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(requests(), requests(), requests(), st.binary(max_size=300)), cuts=cuts)
def test_what_we_accept_h11_accepts_alike(data: bytes, cuts: list[int]) -> None:
    pieces = split_at(data, cuts)
    check(pieces)
    assert ours(pieces) == ours([data] if data else []), "the outcome does not depend on the split"


@settings(max_examples=500, deadline=None)
@given(body=chunked_bodies(3), after=NEXT, cuts=cuts)
def test_chunked_bodies_h11_reads_alike(body: bytes, after: bytes, cuts: list[int]) -> None:
    check(split_at(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body + after, cuts))


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"0" * 19 + b"\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: " + b"a" * 300 + b"\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: a\n\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 17 + b"3\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;\x01\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n",
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"G3T / HTTP/2.0\r\nHost: a\r\n\r\n",
    ],
    ids=[
        "bare-lf", "obs-fold", "control-byte", "cl-list", "cl-twice", "cl-19-digits", "cl-and-te", "te-in-1.0",
        "http-1.2", "h2-preface", "line-limit", "trailer-bare-lf", "chunk-17-digits", "chunk-ext-control",
        "trailer-fold", "authority-form", "asterisk-form", "connect", "trace",
        "lower-case-method", "digit-in-method",
    ],
)
def test_each_stricter_rule_refuses_something_h11_takes(data: bytes) -> None:
    assert oracle([data])[0] == "accepted"
    mine = ours([data])
    assert mine[0] == "refused" and _STRICTER.match(mine[1])
    check([data])


@pytest.mark.parametrize(
    "data, detail",
    [
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 request without Host header"),
        (b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", "duplicate Host header"),
        (b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", "invalid character in request target b'/\\x80'"),
        (b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", "invalid character in request target b'/\\x7f'"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding b'gzip' is not implemented"),
    ],
    ids=["no-host", "two-hosts", "obs-text-target", "del-target", "te-gzip"],
)
def test_what_h11_refused_the_gate_refuses(data: bytes, detail: str) -> None:
    """The checks that only h11 made before: still made, now by the gate, with h11's status."""
    assert oracle([data]) == ("refused",)
    with pytest.raises(RequestError) as refused:
        check_request_head(data, LIMITS)
    assert (refused.value.status, refused.value.detail) == (501 if b"gzip" in data else 400, detail)


def test_a_request_head_keeps_the_clients_spelling() -> None:
    head = check_request_head(b"GET / HTTP/1.1\r\nHOST: a\r\nx-Mixed: 1\r\nX-MIXED: 2\r\n\r\n", LIMITS)
    assert head.headers == ((b"HOST", b"a"), (b"x-Mixed", b"1"), (b"X-MIXED", b"2"))
    assert head.values(b"x-mixed") == [b"1", b"2"] and head.values(b"host") == [b"a"] and head.values(b"none") == []
    head.values(b"x-mixed").append(b"3")
    assert head.values(b"x-mixed") == [b"1", b"2"], "a caller's list is its own"
