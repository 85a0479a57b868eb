"""
Upstream groups over real loopback sockets: a refusing peer, timing-out
peers, a POST that must not be sent twice, and socket.io-style stickiness
with ip_hash (clients on 127.0.N.1, which Linux routes to loopback).

Access-log lines are captured as they are written (the runtime's
``AccessLogs.write`` is wrapped), so a tunnel's line is awaited, not polled.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted

from support import (
    WAIT,
    AccessLines,
    aio,
    capture_access_log,
    listen_backend,
    read_until,
    start_proxy,
    switch_answer,
    talk,
    upgrade_request,
)

LOG = "log_format up '$request|$upstream_addr|$upstream_status';\n"


@pytest.fixture
def proxy(tmp_path):
    """Start a config; ``log`` (support.AccessLines) gets every access-log line, ``lines`` is its list."""
    started = []

    class Proxy:
        def __init__(self, conf: str) -> None:
            service, self.port = start_proxy(tmp_path, conf)
            started.append(service)
            self.log = AccessLines()
            self.lines = self.log.lines
            capture_access_log(service, self.log)

    yield Proxy
    for service in started:
        service.stopService()


def named_backend(name: bytes):
    """Answers plain requests with its name, and upgrades with a 101 then its name."""

    def answer(b, head, rest) -> None:
        if b"upgrade: websocket" in head.lower():
            b.transport.write(switch_answer(head, name))
        else:
            b.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(name) + name)

    return listen_backend(answer)


async def upgrade(port: int, path: str, source: str = "127.0.0.1", size: int = 1) -> bytes:
    """Open a WebSocket tunnel, read the first ``size`` bytes after the 101, close it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(upgrade_request(path))
    head = await read_until(reader, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    data = await asyncio.wait_for(reader.readexactly(size), WAIT)
    writer.close()
    return data


def close_request(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()


@pytest_twisted.ensureDeferred
async def test_one_refusing_peer_costs_requests_and_upgrades_nothing(proxy, refused_port) -> None:
    live, lport = named_backend(b"live")
    dead = refused_port
    try:
        p = proxy(LOG + f"""
        upstream plain {{ server 127.0.0.1:{dead}; server 127.0.0.1:{lport.getHost().port}; }}
        upstream ws {{ server 127.0.0.1:{dead}; server 127.0.0.1:{lport.getHost().port}; }}
        server {{
            listen 127.0.0.1:0;
            access_log stdout up;
            location /plain/ {{ proxy_pass http://plain; }}
            location /ws/ {{ proxy_pass http://ws; }}
        }}""")
        live_addr = f"127.0.0.1:{lport.getHost().port}"
        both = f"127.0.0.1:{dead}, {live_addr}"
        answer = await aio(talk(p.port, close_request("/plain/")))
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"live")
        assert p.lines[-1] == f"GET /plain/ HTTP/1.1|{both}|502, 200"
        logged = p.log.wait_for(len(p.lines) + 1)
        assert await aio(upgrade(p.port, "/ws/", size=4)) == b"live"
        assert (await logged)[-1] == f"GET /ws/ HTTP/1.1|{both}|502, 101"
        # The refusing peer is out for fail_timeout: the next ones go straight to the live one.
        await aio(talk(p.port, close_request("/plain/")))
        assert p.lines[-1] == f"GET /plain/ HTTP/1.1|{live_addr}|200"
    finally:
        await lport.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_timing_out_peer_is_504_only_when_every_try_is_spent(proxy) -> None:
    silent, sport = listen_backend(lambda b, head, rest: None)
    mute, mport = listen_backend(lambda b, head, rest: None)
    live, lport = named_backend(b"live")
    s, m, ok = (f"127.0.0.1:{x.getHost().port}" for x in (sport, mport, lport))
    try:
        p = proxy(LOG + f"""
        upstream dead {{ server {s}; server {m}; }}
        upstream half {{ server {s}; server {ok}; }}
        server {{
            listen 127.0.0.1:0;
            access_log stdout up;
            proxy_read_timeout 150ms;
            location /dead/ {{ proxy_pass http://dead; }}
            location /half/ {{ proxy_pass http://half; }}
        }}""")
        answer = await aio(talk(p.port, close_request("/half/")))
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert p.lines[-1] == f"GET /half/ HTTP/1.1|{s}, {ok}|504, 200"
        answer = await aio(talk(p.port, close_request("/dead/")))
        assert answer.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
        assert p.lines[-1].endswith(f"|{s}, {m}|504, 504")
    finally:
        for port in (sport, mport, lport):
            await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_post_is_not_retried_but_a_get_is(proxy) -> None:
    closer, cport = listen_backend(lambda b, head, rest: b.transport.loseConnection())
    live, lport = named_backend(b"live")
    c, ok = (f"127.0.0.1:{x.getHost().port}" for x in (cport, lport))
    try:
        p = proxy(LOG + f"""
        upstream u {{ server {c} max_fails=0; server {ok}; }}
        upstream v {{ server {c} max_fails=0; server {ok}; }}
        server {{
            listen 127.0.0.1:0;
            access_log stdout up;
            location /post/ {{ proxy_pass http://u; }}
            location /get/ {{ proxy_pass http://v; }}
        }}""")
        answer = await aio(talk(p.port, close_request("/post/", "POST")))
        assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        assert p.lines[-1] == f"POST /post/ HTTP/1.1|{c}|502"
        assert not live.heads
        answer = await aio(talk(p.port, close_request("/get/")))
        assert answer.endswith(b"live")
        assert p.lines[-1] == f"GET /get/ HTTP/1.1|{c}, {ok}|502, 200"
    finally:
        await cport.stopListening()
        await lport.stopListening()


@pytest_twisted.ensureDeferred
async def test_ip_hash_keeps_a_socket_io_session_on_one_of_three_backends(proxy) -> None:
    """
    A socket.io client polls (GET), posts, then upgrades: without stickiness
    the session id is unknown to the backend that gets the next request.
    Clients from three /24s land on three different backends and stay there.
    """
    backends = [named_backend(name) for name in (b"b1", b"b2", b"b3")]
    servers = "".join(f"server 127.0.0.1:{port.getHost().port};" for _, port in backends)
    try:
        p = proxy(f"""
        upstream io {{ ip_hash; {servers} }}
        server {{
            listen 127.0.0.1:0;
            access_log off;
            location /socket.io/ {{ proxy_pass http://io; }}
        }}""")
        seen = {}
        for source in ("127.0.0.1", "127.0.1.1", "127.0.2.1"):
            names = set()
            for _ in range(2):
                names.add((await aio(talk(p.port, close_request("/socket.io/?EIO=4&transport=polling", "GET"), source)))[-2:])
                names.add((await aio(talk(p.port, close_request("/socket.io/?EIO=4&transport=polling", "POST"), source)))[-2:])
                names.add(await aio(upgrade(p.port, "/socket.io/?EIO=4&transport=websocket", source, size=2)))
            assert len(names) == 1, (source, names)
            seen[source] = names.pop()
        assert sorted(seen.values()) == [b"b1", b"b2", b"b3"]
    finally:
        for _, port in backends:
            await port.stopListening()
