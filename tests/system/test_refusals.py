"""
Requests that end before they reach a location: a head refused by the gate
(including the rules h11 applied before the gate parsed heads itself), a head not finished by its deadline or its client, and a body that
stops arriving (``client_body_timeout``).  Driven deterministically (a
StringTransport client and a MemoryReactorClock); the expected access-log
lines are what nginx 1.22 writes for the same bytes (observed with the same
format, apart from our page sizes).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_twisted

from support import WAIT, MemoryProxy, aio, listen_backend, load_text, log_fields, start_proxy

FIELDS = "[$request]|$status|$body_bytes_sent|$bytes_sent|$request_length|$request_uri|$uri|$http_x_a|$request_time"

CONF = """
log_format fields '%s';
server {
    listen 127.0.0.1:8080;
    access_log %s fields;
    client_header_timeout 10s;
    client_body_timeout 5s;
    keepalive_timeout 30s;
    large_client_header_buffers 4 1k;
    location / {
        access_log off;
        proxy_pass http://127.0.0.1:9001;
    }
    location /up/ {
        proxy_pass http://127.0.0.1:9001;
    }
}
"""


class Proxy(MemoryProxy):
    """One client connection on a StringTransport; the access log in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "access.log"
        super().__init__(load_text(tmp_path / "t.conf", CONF % (FIELDS, self.log)))
        self.connect_client()

    def lines(self) -> list[list[str]]:
        return log_fields(self.log)


LONG_LINE = b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"

# (request bytes, status, $request, $request_length, $request_uri, $uri, $http_x_a)
REFUSED = [
    pytest.param(LONG_LINE, "414", LONG_LINE[:1024].decode(), "0", "-", "-", "-", id="request-line-414"),
    pytest.param(b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nX-A: " + b"b" * 1100 + b"\r\n\r\n",
                 "431", "GET /x?y=1 HTTP/1.1", "30", "/x?y=1", "/x", "-", id="header-line-431"),
    pytest.param(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 "400", "POST /p HTTP/1.1", "76", "/p", "/p", "-", id="cl-and-te-400"),
    pytest.param(b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                 "501", "POST /p HTTP/1.1", "54", "/p", "/p", "-", id="te-gzip-501"),
    pytest.param(b"GET /v HTTP/2.0\r\nHost: a\r\n\r\n", "505", "GET /v HTTP/2.0", "0", "-", "-", "-", id="http2-505"),
    pytest.param(b"hello\r\n\r\n", "400", "hello", "0", "-", "-", "-", id="garbage-400"),
    pytest.param(b"GET /nh HTTP/1.1\r\n\r\n", "400", "GET /nh HTTP/1.1", "20", "/nh", "/nh", "-", id="no-host-400"),
    pytest.param(b"GET /n HTTP/1.1\r\nX-A: 1\r\nX-B: a\x00b\r\n\r\n",
                 "400", "GET /n HTTP/1.1", "25", "/n", "/n", "1", id="nul-400"),
    pytest.param(b"CONNECT /x?y=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nContent-Length: 4\r\n\r\nbody",
                 "405", "CONNECT /x?y=1 HTTP/1.1", "63", "/x?y=1", "/x", "1", id="connect-405"),
    pytest.param(b"TRACE /t?q HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n",
                 "405", "TRACE /t?q HTTP/1.1", "40", "/t?q", "/t", "1", id="trace-405"),
    pytest.param(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nX-A: 1\r\n\r\n",
                 "400", "CONNECT h:443 HTTP/1.1", "0", "-", "-", "-", id="connect-authority-400"),
]


@pytest.mark.parametrize("data, status, line, length, request_uri, uri, x_a", REFUSED)
def test_a_refused_head_is_logged_as_nginx_logs_it(tmp_path, data, status, line, length, request_uri, uri, x_a) -> None:
    """In the default server's access_log (its location says off), with the bytes written."""
    p = Proxy(tmp_path)
    p.client.dataReceived(data)
    sent = p.ct.value()
    assert sent.startswith(b"HTTP/1.1 " + status.encode())
    body = len(sent.split(b"\r\n\r\n", 1)[1])
    assert p.lines() == [[f"[{line}]", status, str(body), str(len(sent)), length, request_uri, uri, x_a, "0.000"]]
    assert p.ct.disconnecting and p.reactor.tcpClients == [], "closed, and no upstream dialled"


def test_a_refusal_after_a_kept_alive_request_counts_only_its_own_bytes(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.client.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream, _ = p.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    p.ct.clear()
    p.client.dataReceived(b"GET /v HTTP/3\r\n\r\n")
    sent = p.ct.value()
    body = len(sent.split(b"\r\n\r\n", 1)[1])
    assert p.lines() == [["[GET /v HTTP/3]", "505", str(body), str(len(sent)), "0", "-", "-", "-", "0.000"]]


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", []),
        (b"\r\n", []),
        (b"GET /slow HT", [["[GET /slow HT]", "408", "0", "0", "0", "-", "-", "-", "10.000"]]),
        (b"GET /slow HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n",
         [["[GET /slow HTTP/1.1]", "408", "0", "0", "37", "/slow", "/slow", "1", "10.000"]]),
    ],
    ids=["nothing", "empty-line", "partial-line", "partial-head"],
)
def test_the_header_deadline_logs_408_with_nothing_sent(tmp_path, data, expected) -> None:
    """nginx logs 408 and 0 bytes once it has read a byte of the request, nothing before."""
    p = Proxy(tmp_path)
    if data:
        p.client.dataReceived(data)
    p.reactor.advance(10)
    assert p.ct.value() == b""
    assert p.ct.disconnecting
    assert p.lines() == expected


def test_an_idle_kept_alive_connection_is_not_a_request(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.client.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream, _ = p.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    p.reactor.advance(30)
    assert p.ct.disconnecting
    assert p.lines() == [], "the location's access_log is off; the idle close is not logged"


@pytest.mark.parametrize("idle", [1, 25], ids=["sooner-than-keepalive", "later-than-keepalive"])
def test_the_next_head_has_client_header_timeout_from_its_first_byte(tmp_path, idle) -> None:
    """keepalive_timeout 30s until a byte arrives, then client_header_timeout 10s from that byte."""
    p = Proxy(tmp_path)
    p.client.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream, _ = p.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    p.reactor.advance(idle)
    p.client.dataReceived(b"GET /slow HT")
    p.reactor.advance(9.9)
    assert not p.ct.disconnecting
    p.reactor.advance(0.1)
    assert p.ct.disconnecting


def test_a_client_that_leaves_mid_head_is_logged_as_400(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.client.dataReceived(b"GET /eof HTTP/1.1\r\nHost: a\r\n")
    p.client.readConnectionLost()
    assert p.ct.value() == b""
    assert p.lines() == [["[GET /eof HTTP/1.1]", "400", "0", "0", "28", "/eof", "/eof", "-", "0.000"]]


@pytest.mark.parametrize("length, status", [(1022, b"HTTP/1.1 200"), (1023, b"HTTP/1.1 414"), (1024, b"HTTP/1.1 414")])
def test_a_request_line_and_its_crlf_must_fit_one_buffer(tmp_path, length, status) -> None:
    """nginx 1.22 with 4 1k: a 1022-byte request line is served, 1023 bytes are 414."""
    p = Proxy(tmp_path)
    line = b"GET /" + b"a" * (length - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == length
    p.client.dataReceived(line + b"\r\nHost: a\r\n\r\n")
    if status.endswith(b"200"):
        upstream, _ = p.upstream()
        upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert p.ct.value().startswith(status)


POST = b"POST /up/ HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"


def test_client_body_timeout_is_the_wait_between_two_reads(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.client.dataReceived(POST + b"abc")
    _, ut = p.upstream()
    p.reactor.advance(4)
    p.client.dataReceived(b"de")
    p.reactor.advance(4)
    assert not p.ct.disconnecting, "each read starts the wait again"
    p.reactor.advance(1)
    assert p.ct.value() == b"", "nginx sends nothing: no 408 page"
    assert p.ct.disconnecting and ut.disconnecting
    assert p.lines() == [["[POST /up/ HTTP/1.1]", "408", "0", "0", str(len(POST) + 5), "/up/", "/up/", "-", "9.000"]]


def test_no_body_timeout_while_the_upstream_is_not_taking_the_body(tmp_path) -> None:
    """The Throttle's pause stops the timer; proxy_send_timeout (60 s) bounds that wait instead."""
    p = Proxy(tmp_path)
    p.client.dataReceived(POST + b"abc")
    _, ut = p.upstream()
    ut.producer.pauseProducing()
    p.reactor.advance(30)
    assert not p.ct.disconnecting
    ut.producer.resumeProducing()
    p.reactor.advance(4.5)
    assert not p.ct.disconnecting, "the wait starts at the resume"
    p.reactor.advance(0.5)
    assert p.ct.disconnecting


def test_a_complete_body_stops_the_timer(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.client.dataReceived(POST + b"abc")
    upstream, ut = p.upstream()
    p.client.dataReceived(b"defghij")
    p.reactor.advance(6)
    assert not p.ct.disconnecting
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert p.ct.value().endswith(b"ok") and not p.ct.disconnecting
    assert p.reactor.getDelayedCalls() != [] and all(
        call.getTime() >= p.reactor.seconds() + 29 for call in p.reactor.getDelayedCalls()
    ), "only the keep-alive timer is left"


@pytest_twisted.ensureDeferred
async def test_client_body_timeout_over_loopback(tmp_path) -> None:
    factory, bport = listen_backend(lambda b, head, rest: None)
    conf = (f"server {{ listen 127.0.0.1:0; client_body_timeout 300ms;\n"
            f"location / {{ proxy_pass http://127.0.0.1:{bport.getHost().port}; }} }}\n")
    service, port = start_proxy(tmp_path, conf)
    try:
        async def scenario() -> tuple[bytes, float]:
            loop = asyncio.get_running_loop()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
            started = loop.time()
            data = await asyncio.wait_for(reader.read(), WAIT)
            writer.close()
            return data, loop.time() - started

        data, elapsed = await aio(scenario())
        assert data == b"", "closed without an answer, as nginx does"
        assert 0.25 < elapsed < 2
        await aio(factory.connections[0].lost.asFuture(asyncio.get_running_loop()))
    finally:
        service.stopService()
        await bport.stopListening()
