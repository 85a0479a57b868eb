"""
The proxy over real loopback sockets: ``websockets`` clients and servers for
the seed configs, raw sockets for the upgrade rules (early data, 101
validation, backpressure, half-close, timeouts) and plain HTTP.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import pytest_twisted
from twisted.internet import defer
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from wstunnel.net.tunnel import MAX_BUFFERED_PER_DIRECTION

from support import (
    WAIT,
    aio,
    aio_deferred,
    listen_backend,
    pouring,
    read_all_sampling,
    slow_reader,
    read_exactly,
    read_until,
    start_proxy,
    switch_answer,
    switching,
    upgrade_request,
)

HOWTO = """
http {{
    upstream backend {{ server 127.0.0.1:{port}; }}
    server {{
        listen 127.0.0.1:0;
        location /chat/ {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }}
    }}
}}
"""

MAP_VARIANT = """
http {{
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    upstream backend {{ server 127.0.0.1:{port}; }}
    server {{
        listen 127.0.0.1:0;
        location /chat/ {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
    }}
}}
"""

CONF_D = """
map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
}}
upstream websocket {{
    server localhost:{port};
}}
server {{
    server_name test.enzhico.net;
    listen 127.0.0.1:0;
    location / {{
        proxy_pass http://websocket;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
    }}
}}
"""

# No Upgrade or Connection lines at all: wstunnel forwards the upgrade anyway.
BARE = """
server {{
    listen 127.0.0.1:0;
    location / {{
        proxy_pass http://127.0.0.1:{port};
        {extra}
    }}
}}
"""


async def _echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "conf, path",
    [(HOWTO, "/chat/"), (MAP_VARIANT, "/chat/room"), (CONF_D, "/"), (BARE.replace("{extra}", ""), "/x")],
    ids=["howto", "map", "conf.d", "no-upgrade-lines"],
)
async def test_websocket_echo_through_seed_configs(proxies, conf, path) -> None:
    """A websockets client talks to a websockets server as through nginx."""
    seen_headers = []

    async def scenario() -> None:
        async def handler(ws) -> None:
            seen_headers.append(ws.request.headers)
            await _echo(ws)

        async with serve(handler, "127.0.0.1", 0) as server:
            backend = server.sockets[0].getsockname()[1]
            port = proxies(conf.format(port=backend, extra=""))
            async with connect(f"ws://127.0.0.1:{port}{path}") as ws:
                for message in ["hello", b"\x00\x01binary", "x" * 100_000]:
                    await ws.send(message)
                    assert await ws.recv() == message

    await aio(scenario())
    assert seen_headers[0]["Upgrade"].lower() == "websocket"


@pytest_twisted.ensureDeferred
async def test_conf_d_headers_reach_the_backend(proxies) -> None:
    """Host, X-Real-IP and X-Forwarded-For as the seed 003 config sets them."""
    factory, bport = listen_backend(switching())
    try:
        port = proxies(CONF_D.format(port=bport.getHost().port))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request("/ws", host="Test.Enzhico.NET:443",
                                         extra="X-Forwarded-For: 203.0.113.9\r\n"))
            head = await read_until(reader, b"\r\n\r\n")
            writer.close()
            return head

        head = await aio(scenario())
        assert head.startswith(b"HTTP/1.1 101 ")
        sent = factory.heads[0].decode()
        assert "\r\nHost: test.enzhico.net\r\n" in sent
        assert "\r\nX-Real-IP: 127.0.0.1\r\n" in sent
        assert "\r\nX-Forwarded-For: 203.0.113.9, 127.0.0.1\r\n" in sent
        assert "\r\nUpgrade: websocket\r\n" in sent
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_early_bytes_both_ways_arrive_first_and_in_order(proxies) -> None:
    """nginx's "handshake pipelined" and "handshaked" cases."""
    factory, bport = listen_backend(
        lambda b, head, rest: b.transport.write(switch_answer(head, b"handshaked\r\n"))
    )
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra=""))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request() + b"early-frame")
            head = await read_until(reader, b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
            first = await read_exactly(reader, len(b"handshaked\r\n"))
            writer.write(b"+later")
            await writer.drain()
            backend = factory.connections[0]
            await aio_deferred(backend.wait_data(len(b"early-frame+later")))
            writer.close()
            return first

        assert await aio(scenario()) == b"handshaked\r\n"
        assert factory.connections[0].received == b"early-frame+later"
    finally:
        await bport.stopListening()


def _bad_switch(kind: str):
    def answer(b, head, rest):
        if kind == "wrong-accept":
            b.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\nsmuggled"
            )
        elif kind == "other-token":
            b.transport.write(
                switch_answer(head).replace(b"Upgrade: websocket", b"Upgrade: h2c") + b"smuggled"
            )
        elif kind == "no-accept":
            b.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            )
    return answer


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("kind", ["wrong-accept", "other-token", "no-accept"])
async def test_an_invalid_101_is_a_502_and_both_connections_close(proxies, kind) -> None:
    factory, bport = listen_backend(_bad_switch(kind))
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra=""))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request())
            data = await asyncio.wait_for(reader.read(), WAIT)  # until EOF
            writer.close()
            return data

        data = await aio(scenario())
        assert data.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        assert b"smuggled" not in data
        assert b"Server: wstunnel" in data
        await factory.connections[0].lost
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_101_to_a_plain_request_is_a_502(proxies) -> None:
    factory, bport = listen_backend(
        lambda b, head, rest: b.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
    )
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra=""))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), WAIT)
            writer.close()
            return data

        assert (await aio(scenario())).startswith(b"HTTP/1.1 502 ")
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_refused_upgrade_is_relayed_and_later_bytes_never_reach_the_upstream(proxies) -> None:
    body = b"go away"
    factory, bport = listen_backend(
        lambda b, head, rest: b.transport.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\n" + body
        )
    )
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra=""))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request() + b"frame-before")
            head = await read_until(reader, b"\r\n\r\n")
            got = await read_exactly(reader, len(body))
            writer.write(b"frame-after")
            rest = await asyncio.wait_for(reader.read(), WAIT)  # the proxy closes
            writer.close()
            return head + got + rest

        data = await aio(scenario())
        assert data.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        assert data.endswith(body)
        await factory.connections[0].lost
        assert b"frame" not in factory.connections[0].received
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_opt_out_sends_a_plain_request(proxies) -> None:
    factory, bport = listen_backend(
        lambda b, head, rest: b.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    )
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra='proxy_set_header Upgrade "";'))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request())
            data = await asyncio.wait_for(reader.read(), WAIT)
            writer.close()
            return data

        data = await aio(scenario())
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"ok")
        head = factory.heads[0].lower()
        assert b"\r\nupgrade:" not in head
        assert b"\r\nconnection: close" in head
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_half_close_from_the_client_keeps_the_other_direction_open(proxies) -> None:
    factory, bport = listen_backend(switching(), half_close=True)
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra=""))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request() + b"request-data")
            await read_until(reader, b"\r\n\r\n")
            writer.write_eof()
            backend = await _first_connection(factory)
            assert await aio_deferred(backend.eof) == b"request-data"
            backend.transport.write(b"answer after the client's FIN")
            backend.transport.loseConnection()
            data = await asyncio.wait_for(reader.read(), WAIT)
            writer.close()
            return data

        assert await aio(scenario()) == b"answer after the client's FIN"
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_half_close_from_the_upstream_keeps_the_client_sending(proxies) -> None:
    def on_tunnel(b):
        b.transport.write(b"bye")
        b.transport.loseWriteConnection()

    factory, bport = listen_backend(switching(on_tunnel))
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra=""))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request())
            await read_until(reader, b"\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), WAIT)  # "bye" then EOF
            writer.write(b"still talking")
            backend = await _first_connection(factory)
            await aio_deferred(backend.wait_data(len(b"still talking")))
            writer.close()
            return data

        assert await aio(scenario()) == b"bye"
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_idle_tunnel_is_closed_after_proxy_read_timeout(proxies) -> None:
    factory, bport = listen_backend(switching())
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra="proxy_read_timeout 300ms;"))

        async def scenario() -> float:
            loop = asyncio.get_running_loop()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request())
            await read_until(reader, b"\r\n\r\n")
            started = loop.time()
            assert await asyncio.wait_for(reader.read(), WAIT) == b""
            writer.close()
            return loop.time() - started

        elapsed = await aio(scenario())
        assert elapsed >= 0.25
        await factory.connections[0].lost
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_traffic_keeps_an_idle_timeout_tunnel_open(proxies) -> None:
    """Client-to-upstream traffic alone re-arms proxy_read_timeout (nginx [obs])."""
    factory, bport = listen_backend(switching())
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra="proxy_read_timeout 400ms;"))

        async def scenario() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request())
            await read_until(reader, b"\r\n\r\n")
            backend = await _first_connection(factory)
            for i in range(1, 6):  # 5 x 150 ms: longer than the timeout in total
                writer.write(b"x")
                await aio_deferred(backend.wait_data(i))
                await asyncio.sleep(0.15)  # pacing the traffic, not synchronisation
            assert not reader.at_eof()
            writer.close()

        await aio(scenario())
    finally:
        await bport.stopListening()


def _proxy_buffered(proxy_service) -> int:
    """Bytes held in the proxy's user-space write buffers on both legs."""
    total = 0
    for port in proxy_service.ports:
        for conn in port.factory.connections:
            tunnel = conn._tunnel
            for transport in (tunnel._client, tunnel._upstream):
                total += len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    return total


@pytest_twisted.ensureDeferred
async def test_64_mib_to_a_client_that_does_not_read_stays_bounded(tmp_path) -> None:
    total = 64 * 1024 * 1024
    on_tunnel, firehoses = pouring(total)
    factory, bport = listen_backend(switching(on_tunnel))
    service, port = start_proxy(tmp_path, BARE.format(port=bport.getHost().port, extra=""))
    try:
        peak = 0

        async def scenario() -> str:
            nonlocal peak
            loop = asyncio.get_running_loop()
            sock = await slow_reader(port, upgrade_request())
            head = b""
            while b"\r\n\r\n" not in head:
                head += await loop.sock_recv(sock, 1)
            # Not reading: the kernel buffers fill, then the proxy must stop.
            for _ in range(20):
                await asyncio.sleep(0.02)  # sampling while stalled
                peak = max(peak, _proxy_buffered(service))
            assert firehoses[0].left > total // 2, "the sender was not held back"
            def sample() -> None:
                nonlocal peak
                peak = max(peak, _proxy_buffered(service))

            got = await read_all_sampling(sock, total, b"", sample)
            sock.close()
            return got

        got = await defer.Deferred.fromFuture(asyncio.ensure_future(asyncio.wait_for(scenario(), 60)))
        assert got == await firehoses[0].done
        assert peak <= 2 * MAX_BUFFERED_PER_DIRECTION, f"proxy buffered {peak} bytes on both legs"
    finally:
        service.stopService()
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_routing_errors_and_redirect(proxies) -> None:
    factory, bport = listen_backend(lambda b, head, rest: None)
    try:
        conf = f"""
        server {{
            listen 127.0.0.1:0;
            location /chat/ {{ proxy_pass http://127.0.0.1:{bport.getHost().port}; }}
        }}"""
        port = proxies(conf)

        async def ask(request: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await read_until(reader, b"\r\n\r\n")
            writer.close()
            return head

        not_found = await aio(ask(b"GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n"))
        assert not_found.startswith(b"HTTP/1.1 404 Not Found\r\n")
        assert b"\r\nServer: wstunnel\r\n" in not_found
        moved = await aio(ask(b"GET /chat?x=1 HTTP/1.1\r\nHost: Ex.COM:99\r\n\r\n"))
        assert moved.startswith(b"HTTP/1.1 301 ")
        assert f"\r\nLocation: http://ex.com:{port}/chat/?x=1\r\n".encode() in moved
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_refused_upstream_is_a_502_and_a_silent_one_a_504(proxies) -> None:
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    dead_port = refused.getsockname()[1]
    refused.close()
    silent, sport = listen_backend(lambda b, head, rest: None)
    try:
        port = proxies(f"""
        server {{
            listen 127.0.0.1:0;
            location /dead/ {{ proxy_pass http://127.0.0.1:{dead_port}; }}
            location /silent/ {{ proxy_pass http://127.0.0.1:{sport.getHost().port};
                                 proxy_read_timeout 200ms; }}
        }}""")

        async def ask(path: str) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request(path))
            data = await asyncio.wait_for(reader.read(), WAIT)
            writer.close()
            return data

        assert (await aio(ask("/dead/"))).startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        timed_out = await aio(ask("/silent/"))
        assert timed_out.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
        assert b"<center>wstunnel</center>" in timed_out
    finally:
        await sport.stopListening()


@pytest_twisted.ensureDeferred
async def test_client_leaving_while_waiting_closes_the_upstream(proxies) -> None:
    factory, bport = listen_backend(lambda b, head, rest: None)
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra=""))

        async def scenario() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request())
            backend = await _first_connection(factory)
            writer.close()
            await aio_deferred(backend.lost)

        await aio(scenario())
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_plain_http_with_bodies_both_ways(proxies) -> None:
    def answer(b, head, rest):
        b.transport.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )

    factory, bport = listen_backend(answer)
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra=""))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n0\r\n\r\n")
            head = await read_until(reader, b"\r\n\r\n")
            body = await read_until(reader, b"0\r\n\r\n")
            writer.close()
            return head + body

        data = await aio(scenario())
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"hello" in data and b" world" in data
        sent = factory.heads[0]
        assert b"\r\nTransfer-Encoding: chunked" in sent
        assert factory.connections[0].received.startswith(b"3\r\nabc\r\n0\r\n\r\n")
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_keep_alive_serves_pipelined_requests_in_order(proxies) -> None:
    count = 0

    def answer(b, head, rest):
        nonlocal count
        count += 1
        body = head.split(b" ")[1]
        b.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    factory, bport = listen_backend(answer)
    try:
        port = proxies(BARE.format(port=bport.getHost().port, extra=""))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"".join(b"GET /r%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(3)))
            data = b""
            while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(b"/r2"):
                data += await asyncio.wait_for(reader.read(65536), WAIT)
            writer.close()
            return data

        data = await aio(scenario())
        assert data.index(b"/r0") < data.index(b"/r1") < data.index(b"/r2")
        assert count == 3
    finally:
        await bport.stopListening()


async def _first_connection(factory):
    return await aio_deferred(factory.first)
