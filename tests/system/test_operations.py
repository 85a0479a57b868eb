"""
Operations over real loopback sockets, in-process: worker_connections,
the PROXY protocol, stub_status and the Prometheus endpoint, and a reload
applied to a running service.
"""

from __future__ import annotations

import asyncio
import re
import struct

import pytest
import pytest_twisted

from support import WAIT, aio, listen_backend, read_until, switching, upgrade_request
from tls_support import Authority, client_context
from wstunnel.config.loader import load_config
from wstunnel.wire.proxyproto import V2_SIGNATURE


def answer_200(b, head, rest) -> None:
    b.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def closed_at_once(port: int) -> bool:
    """Whether the proxy closes a new connection without answering a request."""
    return await get(port) == b""


async def get(port: int, path: str = "/", prefix: bytes = b"") -> bytes:
    """The whole answer to one request; empty when the proxy closed or reset the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(prefix + f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    try:
        data = await asyncio.wait_for(reader.read(), WAIT)
    except ConnectionResetError:
        data = b""
    writer.close()
    return data


LIMITED = """
events {{ worker_connections 3; }}
http {{
    server {{
        listen 127.0.0.1:0;
        location / {{ proxy_pass http://127.0.0.1:{port}; }}
    }}
}}
"""


@pytest_twisted.ensureDeferred
async def test_worker_connections_counts_both_legs_of_a_tunnel(proxy_services) -> None:
    factory, bport = listen_backend(switching())
    try:
        service, port = proxy_services(LIMITED.format(port=bport.getHost().port))

        async def scenario() -> tuple[bool, bool, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request())
            assert (await read_until(reader, b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
            # A second tunnel: 4 in use, none idle (an idle connection would be closed to make room).
            second_reader, second = await asyncio.open_connection("127.0.0.1", port)
            second.write(upgrade_request())
            assert (await read_until(second_reader, b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
            refused = await closed_at_once(port)
            # Nothing open was touched: the tunnel still carries bytes.
            writer.write(b"ping")
            await writer.drain()
            received = await factory.connections[0].wait_data(4).asFuture(asyncio.get_running_loop())
            second.close()
            writer.close()
            return refused, True, received

        refused, _, received = await aio(scenario())
        assert refused
        assert received == b"ping"
        stats = service.registry.stats.counters
        assert stats["wstunnel_connections_accepted_total"] == 3
        assert stats["wstunnel_connections_handled_total"] == 2
    finally:
        await bport.stopListening()


PROXIED = """
http {{
    {trust}
    server {{
        listen 127.0.0.1:0 proxy_protocol;
        location / {{
            proxy_pass http://127.0.0.1:{port};
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-PP "$proxy_protocol_addr:$proxy_protocol_port";
        }}
    }}
}}
"""
TRUSTED = "set_real_ip_from 127.0.0.0/8; real_ip_header proxy_protocol;"


def v2_header(source: str, sport: int) -> bytes:
    addresses = bytes(map(int, source.split("."))) + bytes([10, 0, 0, 1]) + struct.pack("!HH", sport, 443)
    tlv = b"\x04\x00\x03abc"  # a TLV (type 4, NOOP) the parser must skip
    body = addresses + tlv
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("header", [
    b"PROXY TCP4 203.0.113.7 10.0.0.1 40001 443\r\n",
    v2_header("203.0.113.7", 40001),
])  # fmt: skip
async def test_proxy_protocol_sets_remote_addr(proxy_services, header) -> None:
    factory, bport = listen_backend(answer_200)
    try:
        _, port = proxy_services(PROXIED.format(port=bport.getHost().port, trust=TRUSTED))
        # A header cut short by a request is refused.
        assert await aio(get(port, prefix=header[:5])) == b""
        reader_data = await aio(_split_send(port, header))
        assert reader_data.startswith(b"HTTP/1.1 200 OK\r\n")
        sent = factory.heads[0].decode()
        assert "\r\nX-Real-IP: 203.0.113.7\r\n" in sent
        assert "\r\nX-PP: 203.0.113.7:40001\r\n" in sent
    finally:
        await bport.stopListening()


async def _split_send(port: int, header: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header[:7])
    await writer.drain()
    writer.write(header[7:] + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    return data


@pytest_twisted.ensureDeferred
async def test_proxy_protocol_without_trust_keeps_the_peer_address(proxy_services) -> None:
    factory, bport = listen_backend(answer_200)
    try:
        _, port = proxy_services(PROXIED.format(port=bport.getHost().port, trust=""))
        data = await aio(get(port, prefix=b"PROXY TCP4 203.0.113.7 10.0.0.1 40001 443\r\n"))
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        sent = factory.heads[0].decode()
        assert "\r\nX-Real-IP: 127.0.0.1\r\n" in sent
        assert "\r\nX-PP: 203.0.113.7:40001\r\n" in sent
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("trust,header", [
    ("set_real_ip_from 10.0.0.0/8; real_ip_header proxy_protocol;", b"PROXY TCP4 203.0.113.7 10.0.0.1 1 443\r\n"),
    (TRUSTED, b"PROXY TCP4 203.0.113.777 10.0.0.1 1 443\r\n"),
    (TRUSTED, b"PROXY TCP9 x\r\n"),
])  # fmt: skip
async def test_untrusted_or_malformed_proxy_header_closes(proxy_services, trust, header) -> None:
    factory, bport = listen_backend(answer_200)
    try:
        _, port = proxy_services(PROXIED.format(port=bport.getHost().port, trust=trust))
        assert await aio(get(port, prefix=header)) == b""
        assert factory.heads == []
    finally:
        await bport.stopListening()


STATUS = """
http {{
    server {{
        listen 127.0.0.1:0;
        location = /basic_status {{ stub_status; }}
        location = /metrics {{ wstunnel_metrics; }}
        location / {{ proxy_pass http://127.0.0.1:{port}; }}
    }}
}}
"""


@pytest_twisted.ensureDeferred
async def test_stub_status_is_nginx_text(proxy_services) -> None:
    factory, bport = listen_backend(answer_200)
    try:
        _, port = proxy_services(STATUS.format(port=bport.getHost().port))
        assert (await aio(get(port))).startswith(b"HTTP/1.1 200 OK")
        data = await aio(get(port, "/basic_status"))
        head, body = data.split(b"\r\n\r\n", 1)
        assert b"\r\nContent-Type: text/plain\r\n" in head
        # nginx 1.22's exact layout (trailing spaces included); this request
        # is the one writing connection, as in nginx.
        assert body == (
            b"Active connections: 1 \nserver accepts handled requests\n 2 2 2 \n"
            b"Reading: 0 Writing: 1 Waiting: 0 \n"
        )
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_prometheus_endpoint_counts_requests_and_tunnels(proxy_services) -> None:
    factory, bport = listen_backend(switching())
    try:
        _, port = proxy_services(STATUS.format(port=bport.getHost().port))

        async def tunnel_then_close() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request() + b"12345")
            await read_until(reader, b"\r\n\r\n")
            await factory.connections[0].wait_data(5).asFuture(asyncio.get_running_loop())
            factory.connections[0].transport.write(b"abc")
            await asyncio.wait_for(reader.readexactly(3), WAIT)
            writer.close()
            await factory.connections[0].lost.asFuture(asyncio.get_running_loop())

        await aio(tunnel_then_close())
        data = await aio(get(port, "/metrics"))
        head, body = data.split(b"\r\n\r\n", 1)
        assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
        text = body.decode()
        assert "# TYPE wstunnel_tunnel_duration_seconds histogram" in text
        assert 'wstunnel_upgrades_total{outcome="tunnel"} 1\n' in text
        assert 'wstunnel_tunnel_bytes_total{direction="client_to_upstream"} 5\n' in text
        assert 'wstunnel_tunnel_bytes_total{direction="upstream_to_client"} 3\n' in text
        assert 'wstunnel_tunnel_duration_seconds_bucket{le="+Inf"} 1\n' in text
        assert 'wstunnel_responses_total{class="1xx"} 1\n' in text
        assert "wstunnel_tunnels_open 0\n" in text
        assert re.search(r'wstunnel_upstream_peer_up\{upstream="127\.0\.0\.1:\d+",peer="127\.0\.0\.1:\d+"\} 1\n', text)
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_apply_keeps_sockets_switches_routes_and_binds_new(proxy_services, tmp_path, free_port) -> None:
    a, aport = listen_backend(lambda b, h, r: b.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"))
    b, bport = listen_backend(lambda b, h, r: b.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB"))
    try:
        conf = "server {{ listen 127.0.0.1:0; {extra} location / {{ proxy_pass http://127.0.0.1:{port}; }} }}"
        service, port = proxy_services(conf.format(port=aport.getHost().port, extra=""))
        old_socket = service.ports[0]
        assert (await aio(get(port))).endswith(b"A")
        path = tmp_path / "new.conf"
        path.write_text(conf.format(port=bport.getHost().port, extra=f"listen 127.0.0.1:{free_port};"))
        assert service.apply(load_config(str(path)))
        assert service.ports[0] is old_socket
        assert (await aio(get(port))).endswith(b"B")
        assert (await aio(get(free_port))).endswith(b"B")
        assert service.registry.stats.counters['wstunnel_config_reloads_total{result="ok"}'] == 1
    finally:
        await aport.stopListening()
        await bport.stopListening()


PROXIED_TLS = """
http {{
    {trust}
    server {{
        listen 127.0.0.1:0 ssl proxy_protocol;
        server_name test.enzhico.net;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://127.0.0.1:{port};
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-PP "$proxy_protocol_addr:$proxy_protocol_port";
            proxy_set_header X-Scheme $scheme;
        }}
    }}
}}
"""


async def _tls_after_header(port: int, header: bytes, context, request: bytes) -> bytes:
    """The PROXY header in clear, then TLS on the same connection (as an L4 balancer does)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header)
    await writer.drain()
    await writer.start_tls(context, server_hostname="test.enzhico.net")
    writer.write(request)
    data = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    return data


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("header", [
    b"PROXY TCP4 203.0.113.7 10.0.0.1 40001 443\r\n",
    v2_header("203.0.113.7", 40001),
])  # fmt: skip
async def test_proxy_protocol_before_tls(proxy_services, tmp_path, header) -> None:
    """``listen ... ssl proxy_protocol``: the header comes before the TLS handshake."""
    ca = Authority(tmp_path)
    cert, key = ca.issue("site", ["test.enzhico.net"])
    factory, bport = listen_backend(answer_200)
    try:
        _, port = proxy_services(PROXIED_TLS.format(port=bport.getHost().port, trust=TRUSTED, cert=cert, key=key))
        request = b"GET / HTTP/1.1\r\nHost: test.enzhico.net\r\nConnection: close\r\n\r\n"
        data = await aio(_tls_after_header(port, header, client_context(ca.path), request))
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        sent = factory.heads[0].decode()
        assert "\r\nX-Real-IP: 203.0.113.7\r\n" in sent
        assert "\r\nX-PP: 203.0.113.7:40001\r\n" in sent
        assert "\r\nX-Scheme: https\r\n" in sent
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_proxy_protocol_before_tls_carries_a_wss_tunnel(proxy_services, tmp_path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("site", ["test.enzhico.net"])
    factory, bport = listen_backend(switching())
    try:
        _, port = proxy_services(PROXIED_TLS.format(port=bport.getHost().port, trust=TRUSTED, cert=cert, key=key))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PROXY TCP4 203.0.113.7 10.0.0.1 40001 443\r\n")
            await writer.drain()
            await writer.start_tls(client_context(ca.path), server_hostname="test.enzhico.net")
            writer.write(upgrade_request(host="test.enzhico.net"))
            head = await read_until(reader, b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 ")
            writer.write(b"through the tunnel")
            await writer.drain()
            got = await factory.connections[0].wait_data(18).asFuture(asyncio.get_running_loop())
            writer.close()
            return got

        assert await aio(scenario()) == b"through the tunnel"
        assert "\r\nX-Real-IP: 203.0.113.7\r\n" in factory.heads[0].decode()
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_proxy_protocol_before_tls_from_an_untrusted_peer_closes(proxy_services, tmp_path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("site", ["test.enzhico.net"])
    factory, bport = listen_backend(answer_200)
    try:
        trust = "set_real_ip_from 10.0.0.0/8; real_ip_header proxy_protocol;"
        _, port = proxy_services(PROXIED_TLS.format(port=bport.getHost().port, trust=trust, cert=cert, key=key))
        assert await aio(get(port, prefix=b"PROXY TCP4 203.0.113.7 10.0.0.1 1 443\r\n")) == b""
        assert factory.heads == []
    finally:
        await bport.stopListening()
