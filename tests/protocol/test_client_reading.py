"""
How the client protocol reads a request without a general HTTP parser: the
gate's head, the body through wstunnel.wire.bodies, and the bytes after the body
kept for the next head (or the tunnel).  Driven deterministically: a
StringTransport client, a MemoryReactorClock, the access log in a file.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.internet.testing import StringTransport

from support import MemoryProxy, load_text
from wstunnel.wire.bodies import ChunkedBody

CONF = """
log_format fields '$request|$status|$request_length';
server {
    listen 127.0.0.1:8080;
    access_log %s fields;
    large_client_header_buffers 4 256;
    location /up/ { proxy_pass http://127.0.0.1:9001; }
}
"""
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Proxy(MemoryProxy):
    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "access.log"
        super().__init__(load_text(tmp_path / "t.conf", CONF % self.log))
        self.connect_client()

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def upstream_body(transport: StringTransport) -> bytes:
    """The body the upstream got, decoded (wstunnel re-chunks as the bytes come)."""
    got: list[bytes] = []
    assert ChunkedBody(1024).feed(transport.value().partition(b"\r\n\r\n")[2], got.append) == b""
    return b"".join(got)


def statuses(sent: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", sent)


def test_a_body_and_the_request_after_it_in_one_write(tmp_path) -> None:
    """The body goes upstream; the next request waits in the gate; $request_length is this request's own."""
    p = Proxy(tmp_path)
    first = b"POST /up/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"
    second = b"GET /up/b HTTP/1.1\r\nHost: a\r\n\r\n"
    p.client.dataReceived(first + second)
    upstream, ut = p.upstream()
    assert upstream_body(ut) == b"abcde"
    assert len(p.reactor.tcpClients) == 1, "the second request waits for the first answer"
    upstream.dataReceived(OK)
    assert len(p.reactor.tcpClients) == 2
    p.upstream()[0].dataReceived(OK)
    assert statuses(p.ct.value()) == [b"200", b"200"] and not p.ct.disconnecting
    assert p.lines() == [f"POST /up/a HTTP/1.1|200|{len(first)}", f"GET /up/b HTTP/1.1|200|{len(second)}"]


def test_a_body_byte_by_byte(tmp_path) -> None:
    p = Proxy(tmp_path)
    request = b"POST /up/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n"
    upstream = None
    for index in range(len(request)):
        p.client.dataReceived(request[index:index + 1])
        if upstream is None and p.reactor.tcpClients:
            upstream, ut = p.upstream()
    assert upstream_body(ut) == b"0123456789"
    upstream.dataReceived(OK)
    assert p.lines() == [f"POST /up/ HTTP/1.1|200|{len(request)}"]


def test_our_own_answer_keeps_the_connection_when_the_held_body_is_empty(tmp_path) -> None:
    """A 404 before the body was read: an empty body (its last chunk already here) lets the next request in."""
    p = Proxy(tmp_path)
    p.client.dataReceived(b"POST /none HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                          b"GET /none HTTP/1.1\r\nHost: a\r\n\r\n")
    assert statuses(p.ct.value()) == [b"404", b"404"] and not p.ct.disconnecting


def test_our_own_answer_closes_when_a_body_is_left_unread(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.client.dataReceived(b"POST /none HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /none HTTP/1.1\r\n\r\n")
    assert statuses(p.ct.value()) == [b"404"] and p.ct.disconnecting


def test_a_chunk_size_line_longer_than_a_head_and_1k_is_a_400(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.client.dataReceived(b"POST /up/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    p.upstream()
    p.client.dataReceived(b"1;" + b"e" * (4 * 256 + 1024))
    assert statuses(p.ct.value()) == [b"400"] and p.ct.disconnecting


def test_a_refused_protocol_switch_closes_after_its_answer(tmp_path) -> None:
    """h2c is never offered upstream, yet the client proposed a switch: its next bytes are not read (RFC 9931)."""
    p = Proxy(tmp_path)
    p.client.dataReceived(b"GET /up/ HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nPRI * HTTP/2.0")
    p.upstream()[0].dataReceived(OK)
    assert b"\r\nConnection: close\r\n" in p.ct.value() and p.ct.disconnecting


def test_activity_sees_a_head_in_progress_and_drain_closes_it(tmp_path) -> None:
    p = Proxy(tmp_path)
    assert p.client.activity == "waiting"
    p.client.dataReceived(b"GET /up/ HT")
    assert p.client.activity == "reading"
    p.client.drain()
    assert p.ct.disconnecting and p.ct.value() == b""


def test_a_pipelined_request_waits_until_the_client_has_read_the_answer(tmp_path) -> None:
    """
    A client that pipelines and never reads must not make us buffer one
    answer per request (nginx reads the next request once the answer is
    sent): while the client transport has paused us (its write buffer is
    over the mark), the next request is not routed; the drain lets it in.
    """
    p = Proxy(tmp_path)
    p.client.dataReceived(b"GET /up/a HTTP/1.1\r\nHost: a\r\n\r\nGET /up/b HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream, _ = p.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
    p.ct.producer.pauseProducing()  # what Twisted does once the client's write buffer is over its mark
    upstream.dataReceived(b"ok")
    assert len(p.reactor.tcpClients) == 1 and p.ct.producerState == "paused"
    p.ct.producer.resumeProducing()  # the client read it all
    assert len(p.reactor.tcpClients) == 2 and p.ct.producer is None
    p.upstream()[0].dataReceived(OK)
    assert statuses(p.ct.value()) == [b"200", b"200"] and not p.ct.disconnecting
