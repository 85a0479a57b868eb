"""
Hostile clients and upstreams over real loopback sockets: every case ends
in a clear status and a closed connection, and nothing ambiguous reaches
the upstream.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted

from support import WAIT, aio, listen_backend, start_proxy, talk
from wstunnel.net.client import H2_REFUSAL

CONF = """
server {{
    listen 127.0.0.1:0;
    client_header_timeout {header_timeout};
    large_client_header_buffers 4 1k;
    location / {{
        proxy_pass http://127.0.0.1:{port};
        proxy_set_header X-Path $uri;
        proxy_set_header X-Token $http_x_token;
        client_max_body_size 100;
    }}
}}
"""


def ok(b, head, rest):
    b.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest.fixture
def proxy(tmp_path):
    started = []

    def start(on_head=ok, header_timeout="5s"):
        factory, bport = listen_backend(on_head)
        service, port = start_proxy(tmp_path, CONF.format(port=bport.getHost().port, header_timeout=header_timeout))
        started.append((service, bport))
        return factory, port

    yield start
    for service, bport in started:
        service.stopService()
        bport.stopListening()


GET = b"GET / HTTP/1.1\r\nHost: a\r\n"

HOSTILE = [
    ("long-request-line", b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    ("long-header-line", GET + b"X-Big: " + b"b" * 1100 + b"\r\n\r\n", 431),
    ("too-many-headers", GET + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
    ("head-too-large", GET + b"".join(b"X-%d: %s\r\n" % (i, b"c" * 900) for i in range(5)) + b"\r\n", 431),
    ("cl-and-te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-and-cl", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("two-equal-cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    ("two-different-cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400),
    ("cl-list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400),
    ("cl-sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400),
    ("te-gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("te-gzip-chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te-twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("te-bad-token", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400),
    ("te-on-http10", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("bad-chunk-size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n", 400),
    ("bad-chunk-end", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy0\r\n\r\n", 400),
    ("obs-fold", GET + b"X-A: 1\r\n 2\r\n\r\n", 400),
    ("obs-fold-first", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("nul-in-value", GET + b"X-A: a\x00b\r\n\r\n", 400),
    ("cr-in-value", GET + b"X-A: a\rb\r\n\r\n", 400),
    ("del-in-value", GET + b"X-A: a\x7fb\r\n\r\n", 400),
    ("bare-lf", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("space-before-colon", GET + b"X-A : 1\r\n\r\n", 400),
    ("bad-method", b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("bad-header-name", GET + b"X\"A: 1\r\n\r\n", 400),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad-host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("bad-host-port", b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400),
    ("host-userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    ("http-2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("http-1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
    ("http-3", b"GET / HTTP/3\r\nHost: a\r\n\r\n", 505),
    ("http-0.9", b"GET /\r\n\r\n", 400),
    ("crlf-via-uri", b"GET /a%0d%0aX-Injected:%201 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("body-over-limit", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 413),
    ("connect-authority-form", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400),
    ("asterisk-form", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("connect", b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
    ("trace", b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("name, request_bytes, status", HOSTILE, ids=[c[0] for c in HOSTILE])
async def test_hostile_request_gets_its_status_and_a_close(proxy, name, request_bytes, status) -> None:
    factory, port = proxy()
    data = await aio(talk(port, request_bytes))
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:80]
    assert b"\r\nConnection: close\r\n" in data
    assert factory.heads == [], "nothing reached the upstream"


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("request_bytes", [
    b"CONNECT / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 4\r\n\r\nbody",
    b"TRACE / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
], ids=["connect", "connect-authority-form", "trace"])
async def test_connect_and_trace_never_reach_the_upstream(proxy, request_bytes) -> None:
    """
    Refused, closed, nothing read after the head; a barrier request on a new connection is the
    first and only one the upstream ever sees, so no connection for the refused one is in flight.
    """
    factory, port = proxy()
    data = await aio(talk(port, request_bytes + GET + b"\r\n"))
    assert data.startswith((b"HTTP/1.1 405 ", b"HTTP/1.1 400 ")) and data.count(b"HTTP/1.1 ") == 1
    await aio(talk(port, b"GET /barrier HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
    assert [head.split(b"\r\n", 1)[0] for head in factory.heads] == [b"GET /barrier HTTP/1.1"]
    assert len(factory.connections) == 1 and factory.connections[0].received == b""


@pytest_twisted.ensureDeferred
async def test_chunked_body_over_limit_is_413_and_the_upstream_request_is_dropped(proxy) -> None:
    factory, port = proxy(on_head=lambda b, head, rest: None)
    body = b"40\r\n" + b"x" * 64 + b"\r\n" + b"40\r\n" + b"y" * 64 + b"\r\n0\r\n\r\n"
    data = await aio(talk(port, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
    assert data.startswith(b"HTTP/1.1 413 ")
    await aio(factory.connections[0].lost.asFuture(asyncio.get_running_loop()))


@pytest_twisted.ensureDeferred
async def test_http2_preface_gets_goaway_and_close(proxy) -> None:
    factory, port = proxy()
    data = await aio(talk(port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
    assert data == H2_REFUSAL
    assert data[3] == 0x04 and data[12] == 0x07, "SETTINGS, then GOAWAY"
    assert data[22:26] == b"\x00\x00\x00\x0d", "HTTP_1_1_REQUIRED"


@pytest_twisted.ensureDeferred
async def test_slowloris_cannot_extend_the_header_deadline(proxy) -> None:
    factory, port = proxy(header_timeout="400ms")

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = loop.time()
        request = GET + b"X-Slow: " + b"s" * 50
        for byte in request:
            if reader.at_eof():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.02)  # pacing the trickle, not synchronisation
            if loop.time() - started > 2:
                break
        data = await asyncio.wait_for(reader.read(), WAIT)
        writer.close()
        assert data == b"", "closed without an answer, as nginx does"
        return loop.time() - started

    elapsed = await aio(scenario())
    assert 0.35 < elapsed < 1.5


@pytest_twisted.ensureDeferred
async def test_h2c_upgrade_is_stripped_and_proxied_as_http11(proxy) -> None:
    factory, port = proxy()
    data = await aio(talk(port, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
                                 b"Connection: Upgrade, HTTP2-Settings, close\r\n\r\n"))
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"ok")
    sent = factory.heads[0].lower()
    assert b"h2c" not in sent and b"http2-settings" not in sent and b"upgrade" not in sent


@pytest_twisted.ensureDeferred
async def test_connection_header_cannot_strip_configured_or_identity_headers(proxy) -> None:
    factory, port = proxy()
    await aio(talk(port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Token: t\r\nX-Forwarded-For: 1.2.3.4\r\n"
                          b"X-Real-IP: 5.6.7.8\r\nX-Other: o\r\n"
                          b"Connection: close, X-Token, X-Forwarded-For, X-Real-IP, Host, X-Path, X-Other\r\n\r\n"))
    sent = factory.heads[0].lower()
    for kept in (b"\r\nhost: ", b"\r\nx-token: t", b"\r\nx-forwarded-for: 1.2.3.4", b"\r\nx-real-ip: 5.6.7.8",
                 b"\r\nx-path: /"):
        assert kept in sent
    assert b"x-other" not in sent


@pytest_twisted.ensureDeferred
async def test_absolute_form_is_routed_by_its_authority(proxy) -> None:
    factory, port = proxy()
    data = await aio(talk(port, b"GET http://Example.ORG/p?q HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n"))
    assert data.startswith(b"HTTP/1.1 200 ")
    assert factory.heads[0].startswith(b"GET /p?q HTTP/1.1\r\n")


UPSTREAM_FAULTS = [
    ("garbage", b"FOO/1.1 200 OK\r\n\r\nhello"),
    ("http09", b"hello world\r\n\r\n"),
    ("bad-status", b"HTTP/1.1 2000 OK\r\n\r\n"),
    ("http2-status", b"HTTP/2.0 200 OK\r\n\r\n"),
    ("bad-header", b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n"),
    ("cl-and-te", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("dup-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
    ("te-gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("head-too-big", b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 5000 + b"\r\nContent-Length: 0\r\n\r\n"),
    ("closed-mid-head", b"HTTP/1.1 200 OK\r\nX-A: 1\r\n"),
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("name, answer", UPSTREAM_FAULTS, ids=[c[0] for c in UPSTREAM_FAULTS])
async def test_upstream_fault_is_a_502(proxy, name, answer) -> None:
    def respond(b, head, rest):
        b.transport.write(answer)
        b.transport.loseConnection()

    factory, port = proxy(on_head=respond)
    # "Connection: close": the 502 for a head cut short keeps the connection
    # otherwise (nginx's "error" condition), and talk() reads until close.
    data = await aio(talk(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
    assert data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), data[:80]
    assert b"hello" not in data


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n",
], ids=["length", "chunked"])
async def test_truncated_body_closes_without_a_final_chunk(proxy, answer) -> None:
    def respond(b, head, rest):
        b.transport.write(answer)
        b.transport.loseConnection()

    factory, port = proxy(on_head=respond)
    data = await aio(talk(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"partial" in data
    assert not data.endswith(b"0\r\n\r\n")
    if b"Content-Length" in answer:
        assert b"\r\nContent-Length: 100\r\n" in data and data.endswith(b"partial")
