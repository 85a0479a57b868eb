"""
The byte, connection and tunnel log variables: exact values for a plain
request and a tunnel, driven deterministically (StringTransports and a
MemoryReactorClock), then once over loopback.

Every expected count is the length of what the transports saw, so the
tests check that counting happens where bytes are written and read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

import pytest_twisted

from support import (
    AccessLines,
    MemoryProxy,
    aio,
    capture_access_log,
    listen_backend,
    load_text,
    log_fields,
    read_exactly,
    read_until,
    start_proxy,
    switch_answer,
    upgrade_request,
)

FIELDS = (
    "$status|$request_length|$bytes_sent|$body_bytes_sent|$connection|$connection_requests|"
    "$upstream_bytes_sent|$upstream_bytes_received|$tunnel_close_reason|$request_time"
)

CONF = """
log_format vars '%s';
upstream backend { server 127.0.0.1:9001; server 127.0.0.1:9002; }
server {
    listen 127.0.0.1:8080;
    access_log %s vars;
    location / {
        proxy_pass http://backend;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
}
"""

GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class Proxy(MemoryProxy):
    """The config, edited by ``edit``, with one client connection open."""

    def __init__(self, tmp_path: Path, edit: Callable[[str], str] = str) -> None:
        self.log = tmp_path / "access.log"
        super().__init__(load_text(tmp_path / "t.conf", edit(CONF % (FIELDS, self.log))))
        self.connect_client()

    def lines(self) -> list[list[str]]:
        return log_fields(self.log)


def test_a_plain_request_counts_what_was_read_and_written(tmp_path) -> None:
    p = Proxy(tmp_path)
    # Two pipelined requests in one read: each is counted on its own.
    p.client.dataReceived(POST + GET)
    upstream, ut = p.upstream()
    upstream.dataReceived(ANSWER)
    first_sent = len(p.ct.value())
    upstream2, ut2 = p.upstream()
    p.reactor.advance(0.25)
    upstream2.dataReceived(ANSWER)
    line1, line2 = p.lines()
    assert line1 == ["200", str(len(POST)), str(first_sent), "5", "1", "1",
                     str(len(ut.value())), str(len(ANSWER)), "-", "0.000"]
    assert line2 == ["200", str(len(GET)), str(len(p.ct.value()) - first_sent), "5", "1", "2",
                     str(len(ut2.value())), str(len(ANSWER)), "-", "0.250"]
    assert ut.value().endswith(b"\r\n\r\nbody") and len(ut.value()) > len(POST)


def test_a_chunked_answer_counts_its_framing_in_bytes_sent_not_in_body_bytes_sent(tmp_path) -> None:
    p = Proxy(tmp_path)
    chunked = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n"
    p.client.dataReceived(chunked)
    upstream, ut = p.upstream()
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"
    upstream.dataReceived(answer)
    (line,) = p.lines()
    assert p.ct.value().endswith(b"8\r\nhelloabc\r\n0\r\n\r\n")
    assert line[:8] == ["200", str(len(chunked)), str(len(p.ct.value())), "8", "1", "1",
                        str(len(ut.value())), str(len(answer))]


def test_on_a_pooled_upstream_connection_each_request_counts_its_own_bytes(tmp_path) -> None:
    p = Proxy(tmp_path, lambda conf: conf.replace("server 127.0.0.1:9002; }", "keepalive 2; }").replace(
        'proxy_set_header Connection "upgrade";', 'proxy_set_header Connection "";'))
    p.client.dataReceived(GET)
    upstream, ut = p.upstream()
    upstream.dataReceived(ANSWER)
    first_request = len(ut.value())
    p.client.dataReceived(GET)
    assert len(p.reactor.tcpClients) == 1, "the second request reuses the parked connection"
    upstream.dataReceived(ANSWER)
    lines = p.lines()
    assert [line[6:8] for line in lines] == [[str(first_request), str(len(ANSWER))],
                                             [str(len(ut.value()) - first_request), str(len(ANSWER))]]


def test_an_answer_made_by_wstunnel_counts_its_bytes_and_a_failed_attempt_counts_zero(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.client.dataReceived(GET)
    p.refuse(index=0)
    p.refuse(index=1)
    (line,) = p.lines()
    body = p.ct.value().split(b"\r\n\r\n", 1)[1]
    assert line == ["502", str(len(GET)), str(len(p.ct.value())), str(len(body)), "1", "1",
                    "0, 0", "0, 0", "-", "0.000"]


def test_a_tunnel_line_is_written_at_its_end_with_both_directions_counted(tmp_path) -> None:
    p = Proxy(tmp_path)
    request = upgrade_request("/ws")
    p.client.dataReceived(request + b"early-client")
    upstream, ut = p.upstream()
    answer = switch_answer(ut.value(), b"early-upstream")
    upstream.dataReceived(answer)
    p.client.dataReceived(b"ping")
    upstream.dataReceived(b"pong!")
    p.reactor.advance(42)
    assert not p.log.exists() or p.log.read_text() == "", "no line while the tunnel is open"
    p.client.readConnectionLost()
    upstream.readConnectionLost()
    upstream.connectionLost()
    p.client.connectionLost()
    (line,) = p.lines()
    head_sent = p.ct.value().index(b"\r\n\r\n") + 4
    assert len(p.ct.value()) == head_sent + len(b"early-upstreampong!")
    assert line == ["101", str(len(request)), str(len(p.ct.value())), str(len(b"early-upstreampong!")), "1", "1",
                    str(len(ut.value())), str(len(answer) + len(b"pong!")), "client_closed", "42.000"]
    assert ut.value().endswith(b"\r\n\r\nearly-clientping")


def test_each_tunnel_end_has_its_reason(tmp_path) -> None:
    p = Proxy(tmp_path)
    p.client.dataReceived(upgrade_request("/ws"))
    upstream, ut = p.upstream()
    upstream.dataReceived(switch_answer(ut.value()))
    p.reactor.advance(60)  # proxy_read_timeout: the idle timeout
    upstream.connectionLost()
    p.client.connectionLost()
    assert p.lines()[0][8] == "idle_timeout"


def answer(backend, head: bytes, rest: bytes) -> None:
    if b"upgrade: websocket" in head.lower():
        backend.transport.write(switch_answer(head, b"hi"))
    else:
        backend.transport.write(ANSWER)


async def exchange(port: int, data: bytes, until: bytes):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    return await read_until(reader, until), writer, reader


@pytest_twisted.ensureDeferred
async def test_loopback_values_match_the_bytes_on_the_wire(tmp_path) -> None:
    backend, bport = listen_backend(answer)
    service, port = start_proxy(tmp_path, (CONF % (FIELDS, "stdout")).replace(
        "127.0.0.1:9001; server 127.0.0.1:9002;", f"127.0.0.1:{bport.getHost().port};").replace(
        "127.0.0.1:8080", "127.0.0.1:0"))
    log = AccessLines()
    capture_access_log(service, log)
    try:
        plain = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        got, writer, reader = await aio(exchange(port, plain, b"hello"))
        writer.close()
        plain_line = (await log.wait_for(1))[0]
        request = upgrade_request("/ws")
        head, writer, reader = await aio(exchange(port, request, b"\r\n\r\n"))
        assert await aio(read_exactly(reader, 2)) == b"hi"
        writer.write(b"ping")
        tunnel_backend = backend.connections[1]
        await tunnel_backend.wait_data(4)
        writer.close()
        tunnel_line = (await log.wait_for(2))[1]
    finally:
        await service.stopService()
        await bport.stopListening()
    plain_up = len(backend.heads[0]) + 4
    assert log.lines == [plain_line, tunnel_line]
    assert plain_line.split("|")[:9] == ["200", str(len(plain)), str(len(got)), "5", "1", "1",
                                       str(plain_up), str(len(ANSWER)), "-"]
    switch = switch_answer(backend.heads[1], b"hi")
    assert tunnel_line.split("|")[:9] == ["101", str(len(request)), str(len(head) + 2), "2", "2", "1",
                                          str(len(backend.heads[1]) + 4 + 4), str(len(switch)), "client_closed"]
