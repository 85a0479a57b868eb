"""
The upstream leg's HTTP/1.1 without h11: the head the gate parses
(:func:`check_response_head`), the request framing and the reader choice
(:mod:`wstunnel.wire.upstream`), and :class:`UpstreamProtocol` driving them,
checked against h11 as an oracle.  Whatever the upstream side accepts, h11
accepts with the same heads, body bytes, bytes after the answer and
keep-alive verdict; what it refuses and h11 takes breaks one of the
strictness rules of gate.py or body.py, named where the input is built and
recognised by the refusal's own detail.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from support import split_at
from wstunnel.wire.bodies import ChunkedBody, LengthBody, UntilClose
from wstunnel.wire.errors import RequestError
from wstunnel.wire.heads import HeadLimits, check_response_head
from wstunnel.wire.response import ResponseHead
from wstunnel.net.upstream import UpstreamProtocol
from wstunnel.wire.upstream import RequestWriter, UpstreamRequest, keeps_alive, response_body

LIMIT = 512  # proxy_buffer_size in these tests
H11_LIMIT = 16 * 1024  # what h11 was given before: max(proxy_buffer_size, 16 KiB)


# The gate's parse.


def test_the_gate_returns_the_head_with_names_as_sent() -> None:
    head = check_response_head(
        b"HTTP/1.0 404 Not  Found\r\nContent-Type:  text/plain \r\nX-a: 1\n\n", HeadLimits(LIMIT, LIMIT, None)
    )
    assert head == ResponseHead(404, b"Not  Found", b"1.0", ((b"Content-Type", b"text/plain"), (b"X-a", b"1")))
    assert head.values(b"x-a") == [b"1"] and head.values(b"content-type") == [b"text/plain"]


@pytest.mark.parametrize(("line", "reason"), [(b"HTTP/1.1 200", b""), (b"HTTP/1.1 200 ", b""), (b"HTTP/1.1 999 X", b"X")])
def test_a_reason_may_be_missing_or_empty(line: bytes, reason: bytes) -> None:
    assert check_response_head(line + b"\r\n\r\n", HeadLimits(LIMIT, LIMIT, None)).reason == reason


@pytest.mark.parametrize("line", [b"HTTP/1.1 099 Low", b"HTTP/1.1 000 X", b"HTTP/1.1 20 X", b"HTTP/2.0 200 OK"])
def test_a_status_under_100_or_another_version_is_refused(line: bytes) -> None:
    with pytest.raises(RequestError, match="no valid HTTP/1.x status line"):
        check_response_head(line + b"\r\n\r\n", HeadLimits(LIMIT, LIMIT, None))


# Request framing.


def _request(*headers: tuple[bytes, bytes], method: bytes = b"POST", version: bytes = b"1.1") -> UpstreamRequest:
    return UpstreamRequest(method=method, target=b"/p?q", http_version=version, headers=headers, upgrade=False)


def test_a_length_body_passes_through_and_is_counted() -> None:
    writer = RequestWriter(_request((b"Host", b"h"), (b"Content-Length", b"5")))
    assert writer.head == b"POST /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"
    assert writer.body(b"abc") == b"abc"
    with pytest.raises(RuntimeError, match="2 bytes short"):
        writer.end()
    assert writer.body(b"de") == b"de" and writer.end() == b"" and writer.ended
    with pytest.raises(RuntimeError, match="1 bytes over"):
        RequestWriter(_request((b"Content-Length", b"0"))).body(b"x")


def test_a_chunked_body_is_chunked_and_ends_with_the_last_chunk() -> None:
    writer = RequestWriter(_request((b"Host", b"h"), (b"Transfer-Encoding", b"chunked")))
    assert writer.body(b"x" * 17) == b"11\r\n" + b"x" * 17 + b"\r\n"
    assert writer.body(b"") == b""
    assert writer.end() == b"0\r\n\r\n"


def test_an_http_1_0_head_and_the_close_token() -> None:
    writer = RequestWriter(_request((b"Connection", b"keep-alive, Close"), method=b"GET", version=b"1.0"))
    assert writer.head == b"GET /p?q HTTP/1.0\r\nConnection: keep-alive, Close\r\n\r\n"
    assert not writer.keep_alive
    assert RequestWriter(_request((b"Connection", b"closed"))).keep_alive
    assert RequestWriter(_request(method=b"GET", version=b"1.0")).head == b"GET /p?q HTTP/1.0\r\n\r\n"


def _head(status: int, *headers: tuple[bytes, bytes], version: bytes = b"1.1") -> ResponseHead:
    return ResponseHead(status, b"", version, headers)


@pytest.mark.parametrize(
    ("method", "head", "reader", "alive"),
    [
        (b"GET", _head(200, (b"content-length", b"3")), LengthBody, True),
        (b"GET", _head(200, (b"Transfer-Encoding", b"chunked")), ChunkedBody, True),
        (b"GET", _head(200), UntilClose, False),
        (b"GET", _head(200, (b"Content-Length", b"3"), version=b"1.0"), LengthBody, False),
        (b"GET", _head(200, (b"Content-Length", b"3"), (b"Connection", b"x, close")), LengthBody, False),
        (b"HEAD", _head(200, (b"Transfer-Encoding", b"chunked")), None, True),
        (b"HEAD", _head(200), None, True),
        (b"GET", _head(204), None, True),
        (b"GET", _head(304, (b"Content-Length", b"9")), None, True),
    ],
)
def test_rfc_9112_section_6_3(method: bytes, head: ResponseHead, reader: type | None, alive: bool) -> None:
    body = response_body(method, head, LIMIT)
    assert (None if body is None else type(body)) is reader
    assert keeps_alive(head, body) is alive


# The upstream protocol against h11.

# The requests the answers are read for.  h11 writes only HTTP/1.1: for
# proxy_http_version 1.0 the upstream side gave it the same head as a 1.1
# request, so that is the oracle (its keep-alive rule reads the request's
# Connection header only).
REQUESTS = {
    "keep-alive": (b"1.1", ((b"Host", b"a"),)),
    "close": (b"1.1", ((b"Host", b"a"), (b"Connection", b"close"))),
    "upgrade": (b"1.1", ((b"Host", b"a"), (b"Connection", b"upgrade"), (b"Upgrade", b"websocket"))),
    "1.0": (b"1.0", ((b"Host", b"a"),)),
    "1.0-close": (b"1.0", ((b"Host", b"a"), (b"Connection", b"close"))),
}

# What the refusal for each strictness rule says (part of its detail).
RULES = {
    "status": "no valid HTTP/1.x status line",  # only HTTP/1.0 and 1.1; no control bytes in the reason
    "control": "control character in header",  # h11 takes \x01-\x08, \x0e-\x1f and \x7f in a value
    "fold": "obsolete line folding",  # h11 joins the lines
    "dup-length": "duplicate Content-Length",  # h11 merges equal values
    "list-length": "invalid Content-Length",  # "3, 3": h11 merges
    "long-length": "invalid Content-Length",  # over 18 digits
    "clte": "Content-Length with Transfer-Encoding",  # h11 lets Transfer-Encoding win
    "size": "upstream sent too big header",  # proxy_buffer_size; h11 had 16 KiB
    "chunk-size": "invalid chunk size line",  # over 16 hex digits (h11: 20)
    "chunk-ext": "invalid chunk size line",  # a control byte in an extension
    "trailer": "invalid trailer line",  # obs-fold or a control byte in a trailer
    "trailer-lf": "bare LF in chunked body",  # h11 takes bare LF in the trailer section
}
JUNK = "junk"  # random bytes somewhere: a refusal h11 does not share must still be one of RULES

_EOL = st.sampled_from([b"\r\n", b"\r\n", b"\n"])


def _mostly(good: list, bad: list) -> st.SearchStrategy:
    """One of ``good`` three times in four, else one of ``bad``."""
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good), st.sampled_from(bad))


_STATUS = _mostly(
    [(b"HTTP/1.1 200 OK", None), (b"HTTP/1.0 200 OK", None), (b"HTTP/1.1 204 No Content", None),
     (b"HTTP/1.1 304 Not Modified", None), (b"HTTP/1.1 404", None), (b"HTTP/1.1 500 ", None),
     (b"HTTP/1.1 999 Odd", None), (b"HTTP/1.1 101 Switching Protocols", None)],
    [(b"HTTP/1.1 099 Low", None), (b"HTTP/2.0 200 OK", "status"), (b"HTTP/1.2 200 OK", "status"),
     (b"HTTP/1.1 200 O\x01K", "status")],
)
_INFORMATIONAL = st.sampled_from([b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\nLink: </a>\n\n"])
_FIELD = _mostly(
    [(b"Content-Type: text/plain", None), (b"X-A:  spaced \t", None), (b"Connection: close", None),
     (b"Connection: keep-alive", None), (b"connection: Keep-Alive, Close", None), (b"Set-Cookie: a=1", None),
     (b"X-Obs: caf\xe9", None), (b"Upgrade: websocket", None), (b"X-Empty:", None)],
    [(b"X-Ctl: a\x01b", "control"), (b"X-Del: \x7f", "control"), (b" folded", "fold"), (b"\tfolded", "fold"),
     (b"Bad Header: x", None), (b"X-Nul: \x00", None), (b"X-Big: " + b"b" * LIMIT, "size")],
)


@st.composite
def _chunked(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    """A chunked body, maybe broken or unfinished."""
    tags: set[str] = set()
    wire = b""
    for _ in range(draw(st.integers(0, 3))):
        size = draw(st.integers(1, 20))
        digits, tag = draw(_mostly([(b"%x" % size, None), (b"%X" % size, None)], [(b"0" * 16 + b"%x" % size, "chunk-size")]))
        ext, ext_tag = draw(_mostly([(b"", None), (b";a=b", None), (b" \t", None)], [(b";\x01", "chunk-ext"), (b";\x7f", "chunk-ext")]))
        end = draw(_mostly([b"\r\n"], [b"XY", b"\n", b"\r"]))
        tags |= {tag, ext_tag} - {None}
        wire += digits + ext + b"\r\n" + b"d" * size + end
    trailer, trailer_tag = draw(_mostly(
        [(b"", None), (b"Foo: bar\r\n", None), (b"X-A: 1\r\nX-B: 2\r\n", None)],
        [(b"X: 1\n", "trailer-lf"), (b"X: 1\r\n continued\r\n", "trailer"), (b"X: \x01\r\n", "trailer")],
    ))
    if trailer_tag:
        tags.add(trailer_tag)
    if draw(st.integers(0, 4)) < 4:  # else unfinished
        wire += b"0\r\n" + trailer + b"\r\n"
    return wire, tags


@st.composite
def _framing(draw: st.DrawFn) -> tuple[list[bytes], bytes, set[str]]:
    """Framing header lines, the body bytes that follow the head, and the rules they break."""
    kind = draw(_mostly(["none", "length", "chunked"], ["clte", "dup", "list", "long"]))
    if kind == "none":
        return [], draw(st.sampled_from([b"", b"until close"])), set()
    if kind == "chunked":
        body, tags = draw(_chunked())
        return [draw(st.sampled_from([b"Transfer-Encoding: chunked", b"transfer-encoding:  Chunked "]))], body, tags
    size = draw(st.integers(0, 12))
    sent = b"L" * max(0, size + draw(st.sampled_from([0, 0, 0, -1, 2])))
    digits = b"%d" % size
    if kind == "length":
        return [b"Content-Length: " + draw(st.sampled_from([digits, b"00" + digits]))], sent, set()
    if kind == "clte":
        return [b"Content-Length: " + digits, b"Transfer-Encoding: chunked"], b"3\r\nabc\r\n0\r\n\r\n", {"clte"}
    if kind == "dup":
        return [b"Content-Length: " + digits] * 2, sent, {"dup-length"}
    if kind == "list":
        return [b"Content-Length: " + digits + b", " + digits], sent, {"list-length"}
    return [b"Content-Length: 0" + b"0" * 18 + digits], sent, {"long-length"}


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    """1xx heads, a final head, its body and what follows, as an upstream might send them."""
    wire = b"".join(draw(st.lists(_INFORMATIONAL, max_size=2)))
    status, tag = draw(_STATUS)
    tags = {tag} - {None}
    fields = draw(st.lists(_FIELD, max_size=3))
    framing, body, body_tags = draw(_framing())
    lines = [status, *(f for f, _ in fields), *framing]
    lines.insert(draw(st.integers(1, len(lines))), b"X-Pos: 1")
    wire += b"".join(line + draw(_EOL) for line in lines) + draw(_EOL) + body
    wire += draw(st.sampled_from([b"", b"", b"NEXT", b"HTTP/1.1 200 OK\r\n\r\n"]))
    tags |= body_tags | {t for _, t in fields if t}
    if draw(st.integers(0, 7)) == 7:
        junk = draw(st.binary(min_size=1, max_size=4))
        cut = draw(st.integers(0, len(wire)))
        wire = wire[:cut] + junk + wire[cut:]
        tags.add(JUNK)
    return wire, tags


class _Recorder:
    """The UpstreamListener of one request: what the upstream side made of the bytes."""

    def __init__(self) -> None:
        self.informational: list[tuple[int, tuple]] = []
        self.head: ResponseHead | None = None
        self.body = b""
        self.ending: tuple = ()
        self.upstream: UpstreamProtocol | None = None

    def upstream_connected(self, upstream: UpstreamProtocol) -> None:
        self.upstream = upstream

    def upstream_informational(self, head: ResponseHead) -> None:
        self.informational.append((head.status, head.headers))

    def upstream_switch(self, head: ResponseHead, early: bytes) -> None:
        self._end("switch", head, early)

    def upstream_head(self, head: ResponseHead) -> None:
        self.head = head

    def upstream_data(self, data: bytes) -> None:
        assert data.__class__ is bytes and data
        self.body += data

    def upstream_end(self) -> None:
        upstream = self.upstream
        self._end("end", upstream.extra_bytes(), upstream.reusable())  # type: ignore[union-attr]

    def upstream_invalid(self, detail: str) -> None:
        self._end("invalid", detail)

    def upstream_lost(self, reason: Failure) -> None:
        self._end("lost", reason.getErrorMessage())

    def _end(self, *ending: object) -> None:
        assert not self.ending, f"a second ending {ending} after {self.ending}"
        self.ending = ending


def ours(method: bytes, request: str, parts: list[bytes]) -> _Recorder:
    recorder = _Recorder()
    upstream = UpstreamProtocol(recorder)
    upstream.makeConnection(StringTransport())
    version, headers = REQUESTS[request]
    upstream.send_head(_request(*headers, method=method, version=version), LIMIT, at_once=True)
    upstream.end_body()
    for i, part in enumerate(parts):
        upstream.dataReceived(part)
        if recorder.ending and recorder.ending[0] == "switch":
            # What a tunnel would have been given next.
            recorder.ending = (*recorder.ending[:2], recorder.ending[2] + b"".join(parts[i + 1:]))
            return recorder
    upstream.readConnectionLost()
    upstream.connectionLost(Failure(ConnectionDone()))
    return recorder


def _h11_headers(headers) -> tuple:
    return tuple((n, v) for n, v in headers.raw_items())


def theirs(method: bytes, request: str, parts: list[bytes]) -> _Recorder:
    """h11 reading the same bytes, as a client connection that sent the same request."""
    seen = _Recorder()
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=H11_LIMIT)
    conn.send(h11.Request(method=method, target=b"/p?q", headers=list(REQUESTS[request][1])))
    conn.send(h11.EndOfMessage())
    try:
        for i, part in enumerate([*parts, b""]):  # b"": the upstream closed
            conn.receive_data(part)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if event is h11.PAUSED:
                    early = conn.trailing_data[0] + b"".join(parts[i + 1:])
                    seen.ending = ("switch", seen.ending[1], early)
                    return seen
                if isinstance(event, h11.InformationalResponse):
                    head = ResponseHead(event.status_code, event.reason, event.http_version, _h11_headers(event.headers))
                    if event.status_code == 101:
                        seen.ending = ("switch", head)
                    else:
                        seen.informational.append((head.status, head.headers))
                elif isinstance(event, h11.Response):
                    seen.head = ResponseHead(event.status_code, event.reason, event.http_version, _h11_headers(event.headers))
                elif isinstance(event, h11.Data):
                    seen.body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    extra = conn.trailing_data[0]
                    reusable = conn.our_state is h11.DONE and conn.their_state is h11.DONE and not extra
                    seen.ending = ("end", len(extra), reusable)
                    return seen
                else:
                    seen.ending = ("closed",)
                    return seen
    except h11.RemoteProtocolError as e:
        seen.ending = ("refused", str(e))
    return seen


def _as_h11_sees(head: ResponseHead) -> ResponseHead:
    """h11 lower-cases the value of Transfer-Encoding; nothing else differs in a head both accept."""
    headers = tuple((n, v.lower() if n.lower() == b"transfer-encoding" else v) for n, v in head.headers)
    return ResponseHead(head.status, head.reason, head.http_version, headers)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=responses(),
    method=st.sampled_from([b"GET", b"GET", b"HEAD"]),
    request=st.sampled_from(list(REQUESTS)),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_the_upstream_side_reads_what_h11_reads(case: tuple[bytes, set[str]], method: bytes, request: str, cuts: list[int]) -> None:
    wire, tags = case
    parts = split_at(wire, cuts)
    got = ours(method, request, parts)
    oracle = theirs(method, request, parts)
    whole = ours(method, request, [wire] if wire else [])
    assert (whole.head, whole.body, whole.ending[0]) == (got.head, got.body, got.ending[0]), "the split mattered"
    kind = got.ending[0]
    if kind == "switch" and request != "upgrade":
        # Not asked for: h11 refuses it; the exchange refuses it too (tested in test_headers, test_frontend).
        assert oracle.ending[0] == "refused"
        return
    if kind in ("end", "switch"):
        assert oracle.informational == got.informational
        assert oracle.head == (got.head and _as_h11_sees(got.head))
        assert oracle.body == got.body
        if kind == "switch":
            assert oracle.ending == ("switch", _as_h11_sees(got.ending[1]), got.ending[2])
            return
        assert oracle.ending[:2] == got.ending[:2]
        if oracle.ending[2] != got.ending[2]:
            # h11 would pool a connection whose answer ended with the close; we do not.
            head = got.head
            assert oracle.ending[2] and head is not None and method != b"HEAD" and head.status not in (204, 304)
            assert not head.values(b"content-length") and not head.values(b"transfer-encoding")
        return
    if oracle.ending[0] not in ("end", "switch"):
        return  # refused by both
    assert kind == "invalid", f"h11 read a whole answer where we saw {got.ending}"
    detail = got.ending[1]
    rules = [rule for rule, text in RULES.items() if text in detail]
    assert rules, f"refused for a reason no strictness rule gives: {detail!r}"
    assert JUNK in tags or tags & set(rules), f"{detail!r} but the input broke only {tags}: {wire!r}"


@pytest.mark.parametrize(
    ("request_kind", "answer", "ending"),
    [
        ("keep-alive", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", ("end", 0, True)),
        ("keep-alive", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxNEXT", ("end", 4, False)),
        ("keep-alive", b"HTTP/1.1 200 OK\r\n\r\nuntil close", ("end", 0, False)),
        ("close", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", ("end", 0, False)),
        # proxy_http_version 1.0: only the request's Connection counts, as in h11.
        ("1.0", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", ("end", 0, True)),
        ("1.0", b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", ("end", 0, False)),
        ("1.0-close", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", ("end", 0, False)),
    ],
)
def test_when_a_connection_may_be_pooled(request_kind: str, answer: bytes, ending: tuple) -> None:
    assert ours(b"GET", request_kind, [answer]).ending == ending


def test_a_chunked_answer_and_a_cut_one() -> None:
    whole = ours(b"GET", "keep-alive", [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"])
    assert (whole.body, whole.ending) == (b"abc", ("end", 0, True))
    cut = ours(b"GET", "keep-alive", [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"])
    assert (cut.body, cut.ending[0]) == (b"ab", "lost") and "chunked body cut short" in cut.ending[1]
    bad = ours(b"GET", "keep-alive", [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n"])
    assert (bad.body, bad.ending) == (b"abc", ("invalid", "chunk data longer than its size"))


def test_informational_heads_share_proxy_buffer_size() -> None:
    """
    1xx heads reach the client as they come, with no backpressure: an
    upstream sending them without end would fill our buffer towards a
    client that does not read.  All of an answer's 1xx heads together fit
    proxy_buffer_size (nginx 1.22 takes the first 1xx as the final head).
    """
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    fit = LIMIT // len(early)
    few = ours(b"GET", "keep-alive", [early * fit + b"HTTP/1.1 204 No Content\r\n\r\n"])
    assert (len(few.informational), few.ending) == (fit, ("end", 0, True))
    flood = ours(b"GET", "keep-alive", [early] * (fit + 100))
    assert len(flood.informational) == fit and flood.ending[0] == "invalid"
