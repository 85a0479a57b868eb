"""
Plain HTTP through the proxy over loopback: a real client (http.client) for
the happy paths, raw sockets where the bytes matter, and a keep-alive
backend that counts its connections.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor

from support import WAIT, aio, listen_keepalive, read_all_sampling, read_until, slow_reader, start_proxy, talk

CONF = """
upstream backend {{
    server 127.0.0.1:{port};
    {keepalive}
}}
server {{
    listen 127.0.0.1:0;
    access_log {log};
    location / {{
        proxy_pass http://backend;
        {extra}
    }}
    location /app/ {{
        proxy_pass http://backend/inner/;
        proxy_hide_header X-Secret;
        proxy_pass_header Server;
    }}
    location /off/ {{
        proxy_pass http://backend/inner/;
        proxy_redirect off;
    }}
    location /explicit/ {{
        proxy_pass http://backend;
        proxy_redirect http://elsewhere/ /moved/;
    }}
}}
"""


def _default_answer(method: bytes, path: bytes, head: bytes, body: bytes) -> bytes:
    payload = method + b" " + path + b" " + body
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), b"" if method == b"HEAD" else payload)


@pytest.fixture
def setup(tmp_path):
    started = []

    def start(answer=_default_answer, keepalive="keepalive 4;", extra=""):
        factory, bport = listen_keepalive(answer)
        log = tmp_path / "access.log"
        conf = CONF.format(port=bport.getHost().port, keepalive=keepalive, extra=extra, log=log)
        service, port = start_proxy(tmp_path, conf)
        started.append((service, bport))
        return factory, port, log

    yield start
    for service, bport in started:
        service.stopService()
        bport.stopListening()


def _http_client_session(port: int) -> list[tuple[int, bytes, str | None]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    results = []
    for method, body in [("GET", None), ("HEAD", None), ("POST", b"posted"), ("PUT", b"put"),
                         ("PATCH", b"p"), ("DELETE", None), ("OPTIONS", None)]:
        conn.request(method, f"/m/{method.lower()}", body=body)
        response = conn.getresponse()
        results.append((response.status, response.read(), response.getheader("Connection")))
    conn.close()
    return results


@pytest_twisted.ensureDeferred
async def test_every_method_over_one_client_and_one_upstream_connection(setup) -> None:
    factory, port, _ = setup()
    results = await aio(asyncio.to_thread(_http_client_session, port))
    assert [r[0] for r in results] == [200] * 7
    assert results[0][1] == b"GET /m/get "
    assert results[1][1] == b"", "HEAD has no body"
    assert results[2][1] == b"POST /m/post posted"
    assert all(r[2] == "keep-alive" for r in results)
    assert [n for n, _, _ in factory.requests] == [1] * 7, "the upstream connection was reused"
    assert len(factory.connections) == 1
    assert len(factory.requests) == 7
    assert all(b"\r\nconnection: close" not in head.lower() for _, head, _ in factory.requests)


@pytest_twisted.ensureDeferred
async def test_bytes_beyond_content_length_are_dropped_and_the_connection_not_reused(setup) -> None:
    def answer(method, path, head, body):
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"

    factory, port, _ = setup(answer)
    request = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    data = await aio(talk(port, request + request + b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert b"EXTRA" not in data
    assert len(factory.connections) == 3, "a connection with stray bytes is never reused"


@pytest_twisted.ensureDeferred
async def test_without_keepalive_each_request_has_its_own_upstream_connection(setup) -> None:
    factory, port, _ = setup(keepalive="")
    request = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    data = await aio(talk(port, request + b"GET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert len(factory.connections) == 2
    assert all(b"\r\nConnection: close" in head for _, head, _ in factory.requests)


@pytest_twisted.ensureDeferred
async def test_no_body_for_head_204_and_304_and_the_connection_goes_on(setup) -> None:
    def answer(method, path, head, body):
        if path == b"/204":
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        if path == b"/304":
            return b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + (b"" if method == b"HEAD" else b"hello")

    factory, port, _ = setup(answer)
    data = await aio(talk(port, b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\n"
                                b"GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /last HTTP/1.1\r\nHost: a\r\n"
                                b"Connection: close\r\n\r\n"))
    heads = data.split(b"\r\n\r\n")
    assert heads[0].startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 5" in heads[0]
    assert heads[1].startswith(b"HTTP/1.1 204 No Content") and b"Transfer-Encoding" not in heads[1]
    assert heads[2].startswith(b"HTTP/1.1 304 Not Modified") and b"Transfer-Encoding" not in heads[2]
    assert heads[3].startswith(b"HTTP/1.1 200 OK") and heads[4] == b"hello"


@pytest_twisted.ensureDeferred
async def test_http10_clients_as_nginx_answers_them(setup) -> None:
    def answer(method, path, head, body):
        if path == b"/chunked":
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    factory, port, _ = setup(answer)
    plain = await aio(talk(port, b"GET /x HTTP/1.0\r\n\r\n"))
    assert plain.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: close\r\n" in plain
    kept = await aio(talk(port, b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                b"GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
    first, second = kept.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert b"\r\nConnection: keep-alive\r\n" in first and first.endswith(b"ok")
    assert b"\r\nConnection: close\r\n" in second and b"Transfer-Encoding" not in second
    assert second.endswith(b"\r\n\r\nhello"), "close-delimited, not chunked"


@pytest_twisted.ensureDeferred
async def test_chunked_for_http11_clients_when_the_length_is_unknown(setup) -> None:
    def answer(method, path, head, body):
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"

    factory, port, _ = setup(answer)
    data = await aio(talk(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
    assert b"\r\nTransfer-Encoding: chunked\r\n" in data
    assert data.endswith(b"b\r\nhello world\r\n0\r\n\r\n"), "one chunk per read of the answer"


@pytest_twisted.ensureDeferred
async def test_keepalive_requests_closes_after_the_last_allowed_answer(setup) -> None:
    factory, port, _ = setup(extra="keepalive_requests 2;")
    request = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    data = await aio(talk(port, request * 3))
    answers = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 2, "the third request is never read"
    assert b"Connection: keep-alive" in answers[0] and b"Connection: close" in answers[1]


@pytest_twisted.ensureDeferred
async def test_keepalive_timeout_closes_an_idle_connection(setup) -> None:
    factory, port, _ = setup(extra="keepalive_timeout 300ms;")

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        await read_until(reader, b"GET /a ")
        started = loop.time()
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
        writer.close()
        return loop.time() - started

    assert 0.25 < await aio(scenario()) < 2


@pytest_twisted.ensureDeferred
async def test_expect_100_continue_is_answered_by_the_proxy(setup) -> None:
    factory, port, _ = setup()

    async def scenario() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = await read_until(reader, b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")
        head = await read_until(reader, b"\r\n\r\n")
        writer.close()
        return head

    assert (await aio(scenario())).startswith(b"HTTP/1.1 200 OK")
    assert b"expect" not in factory.requests[0][1].lower()
    assert factory.requests[0][2] == b"data"


@pytest_twisted.ensureDeferred
async def test_a_client_that_leaves_aborts_the_upstream_request_and_logs_499(setup) -> None:
    arrived = defer.Deferred()

    def answer(method, path, head, body):
        arrived.callback(None)
        return b""

    factory, port, log = setup(answer)

    async def scenario() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        await arrived.asFuture(asyncio.get_running_loop())
        writer.close()
        await factory.first_close.asFuture(asyncio.get_running_loop())

    await aio(scenario())
    assert '"GET /slow HTTP/1.1" 499 ' in log.read_text()


@pytest_twisted.ensureDeferred
async def test_hide_pass_and_redirect_rules(setup) -> None:
    def answer(method, path, head, body):
        return (b"HTTP/1.1 302 Found\r\nServer: backend/1\r\nX-Secret: s\r\nX-Accel-Redirect: /x\r\n"
                b"Location: http://backend/inner/next\r\nRefresh: 5; url=http://backend/inner/r\r\n"
                b"Content-Length: 0\r\n\r\n")

    factory, port, _ = setup(answer)
    app = await aio(talk(port, b"GET /app/p HTTP/1.1\r\nHost: ex.org\r\nConnection: close\r\n\r\n"))
    assert f"\r\nLocation: http://ex.org:{port}/app/next\r\n".encode() in app
    assert b"\r\nRefresh: 5; url=/app/r\r\n" in app
    assert b"\r\nServer: backend/1\r\n" in app and b"Server: wstunnel" not in app
    assert b"X-Secret" not in app and b"X-Accel-Redirect" not in app
    off = await aio(talk(port, b"GET /off/p HTTP/1.1\r\nHost: ex.org\r\nConnection: close\r\n\r\n"))
    assert b"\r\nLocation: http://backend/inner/next\r\n" in off and b"\r\nServer: wstunnel\r\n" in off
    assert b"X-Secret: s" in off

    def other(method, path, head, body):
        return b"HTTP/1.1 301 Moved\r\nLocation: http://elsewhere/a\r\nContent-Length: 0\r\n\r\n"

    factory.answer = other
    explicit = await aio(talk(port, b"GET /explicit/ HTTP/1.1\r\nHost: ex.org\r\nConnection: close\r\n\r\n"))
    assert f"\r\nLocation: http://ex.org:{port}/moved/a\r\n".encode() in explicit


def _proxy_buffered(service) -> int:
    """User-space bytes waiting in the proxy's write buffers, both legs."""
    total = 0
    for port in service.ports:
        for conn in port.factory.connections:
            transports = [conn.transport]
            if conn._exchange is not None and conn._exchange.upstream is not None:
                transports.append(conn._exchange.upstream.transport)
            for t in transports:
                total += len(t.dataBuffer) - t.offset + t._tempDataLen
    return total


@pytest_twisted.ensureDeferred
async def test_a_slow_reader_of_a_large_response_does_not_make_the_proxy_buffer_it(tmp_path) -> None:
    total = 32 * 1024 * 1024
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB
    expected = hashlib.sha256()
    for _ in range(total // len(block)):
        expected.update(block)

    class Sender(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
            self.left = total // len(block)
            self.transport.registerProducer(self, True)
            self.resumeProducing()

        def resumeProducing(self) -> None:
            self.paused = False
            while not self.paused and self.left:
                self.left -= 1
                self.transport.write(block)
            if not self.left:
                self.transport.unregisterProducer()

        def pauseProducing(self) -> None:
            self.paused = True

        def stopProducing(self) -> None:
            self.paused = True

    senders = []
    factory = protocol.Factory.forProtocol(Sender)
    factory.buildProtocol = lambda addr: senders.append(Sender()) or senders[-1]
    bport = reactor.listenTCP(0, factory, interface="127.0.0.1")
    service, port = start_proxy(tmp_path, f"""
        server {{ listen 127.0.0.1:0; access_log off;
                 location / {{ proxy_pass http://127.0.0.1:{bport.getHost().port}; }} }}""")
    peak = 0
    try:
        async def scenario() -> str:
            nonlocal peak
            loop = asyncio.get_running_loop()
            sock = await slow_reader(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            for _ in range(15):
                await asyncio.sleep(0.02)  # sampling while the client does not read
                peak = max(peak, _proxy_buffered(service))
            assert senders[0].left > (total // len(block)) // 2, "the upstream was not held back"
            data = b""
            while b"\r\n\r\n" not in data:
                data += await loop.sock_recv(sock, 65536)
            def sample() -> None:
                nonlocal peak
                peak = max(peak, _proxy_buffered(service))

            got = await read_all_sampling(sock, total, data.split(b"\r\n\r\n", 1)[1], sample)
            sock.close()
            return got

        got = await defer.Deferred.fromFuture(asyncio.ensure_future(asyncio.wait_for(scenario(), 30)))
        assert got == expected.hexdigest()
        assert peak <= 2 * 2 * 64 * 1024, f"proxy buffered {peak} bytes"
    finally:
        service.stopService()
        await bport.stopListening()
