"""
TLS on both sides over real loopback sockets, with a PKI generated per
session (tests/tls_support.py): wss through the seed 003 config, SNI,
protocol versions, plain HTTP on a TLS port, client certificates, https
upstreams with verification, and the tunnel's bounds over TLS.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
import pytest_twisted
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from support import aio, start_proxy
from tls_support import SEED_003_TLS, Authority, any_cert_context, client_context


@pytest.fixture(scope="module")
def site(ca) -> tuple[str, str]:
    return ca.issue("site", ["test.enzhico.net", "127.0.0.1"])


@pytest_twisted.ensureDeferred
async def test_wss_echo_through_the_seed_003_config(proxies, ca, site) -> None:
    seen = []

    async def scenario() -> None:
        async def handler(ws) -> None:
            seen.append(ws.request.headers)
            async for message in ws:
                await ws.send(message)

        async with serve(handler, "127.0.0.1", 0) as server:
            backend = server.sockets[0].getsockname()[1]
            port = proxies(SEED_003_TLS.format(port=backend, cert=site[0], key=site[1]))
            async with connect(f"wss://127.0.0.1:{port}/", ssl=client_context(ca.path),
                               server_hostname="test.enzhico.net") as ws:
                for message in ["hello", b"\x00\x01binary", "x" * 100_000]:
                    await ws.send(message)
                    assert await ws.recv() == message

    await aio(scenario())
    assert seen[0]["X-Forwarded-Proto"] == "https"


# -- helpers ----------------------------------------------------------------------------------

from cryptography import x509  # noqa: E402
from twisted.logger import globalLogPublisher  # noqa: E402

from support import listen_backend, ok_and_close, read_until, switching, upgrade_request  # noqa: E402
from tls_support import listen_tls_backend  # noqa: E402


async def _https_get(port: int, context: ssl.SSLContext, server_hostname: str | None,
                     host: str = "localhost", path: str = "/") -> tuple[bytes, x509.Certificate]:
    """One request over TLS; the answer's head and body, and the certificate the proxy showed."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_hostname
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer, x509.load_der_x509_certificate(der)


async def _plain_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` without TLS and read until the proxy closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


def _cn(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


@pytest.fixture
def error_log():
    events: list[str] = []

    def observe(event) -> None:
        from twisted.logger import formatEvent
        events.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


TWO_SITES = """
server {{
    listen 127.0.0.1:0 ssl;
    server_name a.test;
    ssl_certificate {a[0]};
    ssl_certificate_key {a[1]};
    location / {{ proxy_pass http://127.0.0.1:{port}; proxy_set_header X-SNI "$ssl_server_name $ssl_protocol"; }}
}}
server {{
    listen 127.0.0.1:{listen} ssl default_server;
    server_name b.test;
    ssl_certificate {b[0]};
    ssl_certificate_key {b[1]};
    location / {{ proxy_pass http://127.0.0.1:{port}; }}
}}
"""


@pytest.fixture
def two_sites(ca, proxies, free_port):
    a = ca.issue("a", ["a.test"])
    b = ca.issue("b", ["b.test"])
    factory, bport = listen_backend(ok_and_close)
    port = proxies(TWO_SITES.format(a=a, b=b, port=bport.getHost().port, listen=free_port).replace(
        "127.0.0.1:0 ssl", f"127.0.0.1:{free_port} ssl"))
    yield port, factory
    bport.stopListening()


# -- serving TLS ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "sni, expected", [("a.test", "a.test"), ("b.test", "b.test"), (None, "b.test"), ("other.test", "b.test")],
    ids=["a", "b", "no-sni", "unknown-name"],
)
async def test_sni_chooses_the_certificate(ca, two_sites, sni, expected) -> None:
    port, factory = two_sites
    answer, cert = await aio(_https_get(port, any_cert_context(), sni, host=sni or "b.test"))
    assert _cn(cert) == expected
    assert answer.startswith(b"HTTP/1.1 200 ")


@pytest_twisted.ensureDeferred
async def test_sni_variables_and_a_verified_client(ca, two_sites) -> None:
    port, factory = two_sites
    answer, _ = await aio(_https_get(port, client_context(ca.path), "a.test", host="a.test"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nX-SNI: a.test TLSv1.3\r\n" in factory.heads[0] + b"\r\n"


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("sni, host", [("a.test", "b.test"), ("b.test", "a.test"), (None, "a.test")])
async def test_host_naming_another_server_than_sni_is_421(two_sites, sni, host) -> None:
    port, factory = two_sites
    answer, _ = await aio(_https_get(port, any_cert_context(), sni, host=host))
    assert answer.startswith(b"HTTP/1.1 421 Misdirected Request\r\n")
    assert factory.heads == []


@pytest_twisted.ensureDeferred
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["1.0", "1.1"])
async def test_tls_1_0_and_1_1_are_refused(two_sites, version) -> None:
    port, _ = two_sites

    def old_client(maximum: ssl.TLSVersion) -> ssl.SSLContext:
        context = any_cert_context()
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
        return context

    with pytest.raises(ssl.SSLError):
        await aio(_https_get(port, old_client(version), "a.test", host="a.test"))
    # The same client allowed TLS 1.2 gets through: the refusal is the version.
    answer, _ = await aio(_https_get(port, old_client(ssl.TLSVersion.TLSv1_2), "a.test", host="a.test"))
    assert answer.startswith(b"HTTP/1.1 200 ")


@pytest_twisted.ensureDeferred
async def test_plain_http_on_a_tls_port_is_400_and_closed(two_sites) -> None:
    port, factory = two_sites

    answer = await aio(_plain_exchange(port, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nConnection: close\r\n" in answer
    assert factory.heads == []


MTLS = """
server {{
    listen 127.0.0.1:0 ssl;
    ssl_certificate {site[0]};
    ssl_certificate_key {site[1]};
    ssl_client_certificate {ca};
    ssl_verify_client {mode};
    location / {{
        proxy_pass http://127.0.0.1:{port};
        proxy_set_header X-Client "$ssl_client_verify|$ssl_client_s_dn";
    }}
}}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "mode, who, status, verify",
    [
        ("on", "trusted", 200, "SUCCESS|CN=alice,O=wstunnel tests"),
        ("on", None, 400, "page:No required SSL certificate was sent"),
        ("on", "stranger", 400, "page:The SSL certificate error"),
        ("optional", None, 200, "NONE|"),
        ("optional", "stranger", 200, "FAILED:unable to get local issuer certificate|CN=mallory,O=wstunnel tests"),
    ],
)
async def test_client_certificates(ca, site, proxies, tmp_path, mode, who, status, verify) -> None:
    factory, bport = listen_backend(ok_and_close)
    try:
        port = proxies(MTLS.format(site=site, ca=ca.path, mode=mode, port=bport.getHost().port))
        cert = None
        if who == "trusted":
            cert = ca.issue("alice", ["alice"], client=True)
        elif who == "stranger":
            cert = Authority(tmp_path, "stranger CA").issue("mallory", ["mallory"], client=True)
        answer, _ = await aio(_https_get(port, client_context(ca.path, cert), "test.enzhico.net"))
        assert answer.startswith(f"HTTP/1.1 {status} ".encode())
        if verify.startswith("page:"):
            # nginx's own pages for its 496 and 495, sent as 400.
            note = verify.removeprefix("page:")
            assert f"<title>400 {note}</title>".encode() in answer
            assert f"<center>{note}</center>".encode() in answer
            assert factory.heads == []
        else:
            assert f"\r\nX-Client: {verify}\r\n".encode() in factory.heads[0] + b"\r\n"
    finally:
        await bport.stopListening()


# -- TLS to upstreams -------------------------------------------------------------------------

HTTPS_UPSTREAM = """
server {{
    listen 127.0.0.1:0;
    proxy_connect_timeout 1s;
    location / {{
        proxy_pass https://{target};
        {extra}
    }}
}}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "backend_names, extra, status, logged",
    [
        (["upstream.test"], "proxy_ssl_trusted_certificate {ca}; proxy_ssl_name upstream.test;", 200, None),
        (["127.0.0.1"], "proxy_ssl_trusted_certificate {ca};", 200, None),
        (["other.test"], "proxy_ssl_trusted_certificate {ca}; proxy_ssl_name upstream.test;", 502,
         'upstream SSL certificate does not match "upstream.test"'),
        (["upstream.test"], "proxy_ssl_name upstream.test;", 502,
         "upstream SSL certificate verify error: (20:unable to get local issuer certificate)"),
        (["upstream.test"], "proxy_ssl_verify off;", 200, None),
    ],
    ids=["verified-name", "verified-ip", "wrong-name", "unknown-ca", "verify-off"],
)
async def test_https_upstream_verification(ca, proxies, error_log, backend_names, extra, status, logged) -> None:
    seen_sni = []

    def answer(b, head, rest) -> None:
        seen_sni.append(b.transport.getHandle().get_servername())
        ok_and_close(b, head, rest)

    factory, bport = listen_tls_backend(answer, ca.issue("upstream", backend_names))
    try:
        target = f"127.0.0.1:{bport.getHost().port}"
        port = proxies(HTTPS_UPSTREAM.format(target=target, extra=extra.format(ca=ca.path)))

        data = await aio(_plain_exchange(port, b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
        assert data.startswith(f"HTTP/1.1 {status} ".encode())
        if logged is None:
            assert data.endswith(b"ok")
            assert seen_sni == [b"upstream.test" if "proxy_ssl_name" in extra else None]
        else:
            assert factory.heads == []
            line = next(e for e in error_log if "SSL handshake with upstream" in e)
            assert f"upstream {target} failed ({logged})" in line
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_upstream_that_never_finishes_the_handshake_is_504(proxies, error_log) -> None:
    factory, bport = listen_backend(lambda b, head, rest: None)  # accepts TCP, never speaks TLS
    try:
        port = proxies(HTTPS_UPSTREAM.format(target=f"127.0.0.1:{bport.getHost().port}",
                                             extra="proxy_connect_timeout 200ms;"))

        request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        assert (await aio(_plain_exchange(port, request))).startswith(b"HTTP/1.1 504 ")
        assert any("SSL handshake timed out" in e for e in error_log)
    finally:
        await bport.stopListening()


@pytest_twisted.ensureDeferred
async def test_wss_to_a_wss_upstream(ca, site, proxies) -> None:
    """TLS on both legs of a tunnel, both verified."""
    factory, bport = listen_tls_backend(switching(), ca.issue("ws-upstream", ["127.0.0.1"]))
    try:
        port = proxies(HTTPS_UPSTREAM.format(
            target=f"127.0.0.1:{bport.getHost().port}", extra=f"proxy_ssl_trusted_certificate {ca.path};"
        ).replace("listen 127.0.0.1:0;", f"listen 127.0.0.1:0 ssl; ssl_certificate {site[0]}; "
                                          f"ssl_certificate_key {site[1]};"))

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(ca.path), server_hostname="test.enzhico.net")
            writer.write(upgrade_request("/ws", host="test.enzhico.net"))
            head = await read_until(reader, b"\r\n\r\n")
            writer.write(b"ping")
            await factory.connections[0].wait_data(4).asFuture(asyncio.get_running_loop())
            factory.connections[0].transport.write(b"pong")
            reply = await asyncio.wait_for(reader.readexactly(4), 5)
            writer.close()
            return head + reply

        got = await aio(scenario())
        assert got.startswith(b"HTTP/1.1 101 ") and got.endswith(b"pong")
    finally:
        await bport.stopListening()


# -- the tunnel over TLS ----------------------------------------------------------------------

import hashlib  # noqa: E402
import socket  # noqa: E402

from twisted.internet import defer  # noqa: E402

from support import pouring  # noqa: E402


def _held(transport) -> int:
    """User-space bytes a transport holds: TLS layers (aggregator, pending writes) and TCP buffers."""
    held = 0
    if hasattr(transport, "_aggregator"):
        held += sum(len(b) for b in getattr(transport._aggregator, "_buffer", ()))
        held += sum(len(b) for b in transport._appSendBuffer or ())
        transport = transport.transport
    return held + len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def _tunnel_held(service) -> int:
    total = 0
    for port in service.ports:
        factory = getattr(port.factory, "wrappedFactory", port.factory)
        for conn in factory.connections:
            if conn._tunnel is not None:
                total += _held(conn._tunnel._client) + _held(conn._tunnel._upstream)
    return total


TLS_TUNNEL = """
server {{
    listen 127.0.0.1:0 ssl;
    ssl_certificate {site[0]};
    ssl_certificate_key {site[1]};
    proxy_read_timeout {idle};
    send_timeout 5s;
    location / {{ proxy_pass {scheme}://127.0.0.1:{port}; proxy_ssl_trusted_certificate {ca}; }}
}}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("upstream_tls", [False, True], ids=["plain-upstream", "tls-upstream"])
async def test_64_mib_over_wss_to_a_slow_reader_stays_bounded(ca, site, tmp_path, upstream_tls) -> None:
    total = 64 * 1024 * 1024
    on_tunnel, hoses = pouring(total)
    if upstream_tls:
        factory, bport = listen_tls_backend(switching(on_tunnel), ca.issue("fast", ["127.0.0.1"]))
    else:
        factory, bport = listen_backend(switching(on_tunnel))
    service, port = start_proxy(tmp_path, TLS_TUNNEL.format(
        site=site, idle="60s", scheme="https" if upstream_tls else "http", port=bport.getHost().port, ca=ca.path))
    try:
        peak = 0

        async def scenario() -> str:
            nonlocal peak
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(ca.path), server_hostname="test.enzhico.net", limit=64 * 1024)
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            writer.write(upgrade_request(host="test.enzhico.net"))
            await read_until(reader, b"\r\n\r\n")
            for _ in range(20):  # not reading: the proxy must stop the sender
                await asyncio.sleep(0.02)  # sampling while stalled
                peak = max(peak, _tunnel_held(service))
            assert hoses[0].left > total // 2, "the sender was not held back"
            digest, received = hashlib.sha256(), 0
            while received < total:
                data = await asyncio.wait_for(reader.read(1024 * 1024), 5)
                assert data, "connection closed early"
                received += len(data)
                digest.update(data)
                peak = max(peak, _tunnel_held(service))
            writer.close()
            return digest.hexdigest()

        got = await defer.Deferred.fromFuture(asyncio.ensure_future(asyncio.wait_for(scenario(), 60)))
        assert got == await hoses[0].done
        assert peak <= 2 * 2 * 64 * 1024, f"proxy buffered {peak} bytes"
        print(f"peak user-space bytes held by the TLS tunnel: {peak}")
    finally:
        service.stopService()
        await bport.stopListening()


class _SilentTLSClient:
    """
    A TLS client driven by hand over a raw socket (ssl.MemoryBIO), so the
    test decides when it stops processing TLS: after that it never answers
    the proxy's close_notify, like a peer that vanished.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, name: str) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=name)
        self.loop = asyncio.get_running_loop()

    async def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            await self.loop.sock_sendall(self.sock, data)

    async def _feed(self) -> None:
        data = await self.loop.sock_recv(self.sock, 65536)
        assert data, "proxy closed during the exchange"
        self.incoming.write(data)

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                await self._feed()

    async def send(self, data: bytes) -> None:
        self.tls.write(data)
        await self._flush()

    async def read_until(self, marker: bytes) -> bytes:
        got = b""
        while marker not in got:
            try:
                got += self.tls.read(65536)
            except ssl.SSLWantReadError:
                await self._feed()
        return got


@pytest_twisted.ensureDeferred
async def test_a_tls_peer_that_vanishes_does_not_keep_the_tunnel_open(ca, site, tmp_path) -> None:
    factory, bport = listen_backend(switching())
    service, port = start_proxy(tmp_path, TLS_TUNNEL.format(
        site=site, idle="300ms", scheme="http", port=bport.getHost().port, ca=ca.path))
    try:
        async def scenario() -> bytes:
            loop = asyncio.get_running_loop()
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setblocking(False)
            client = _SilentTLSClient(sock, client_context(ca.path), "test.enzhico.net")
            await client.handshake()
            await client.send(upgrade_request(host="test.enzhico.net"))
            assert (await client.read_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
            # Silent from now on: the idle timeout closes the tunnel, and the
            # proxy must close TCP without waiting for our close_notify.
            raw = b""
            while True:
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    break
                raw += data
            sock.close()
            return raw

        raw = await aio(scenario())
        assert raw, "the proxy sent no close_notify"
        await factory.connections[0].lost
        assert not service.ports[0].factory.wrappedFactory.connections
    finally:
        service.stopService()
        await bport.stopListening()


async def _alpn(port: int, offer: list[str]) -> str | None:
    context = any_cert_context()
    context.set_alpn_protocols(offer)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="a.test")
    try:
        return writer.get_extra_info("ssl_object").selected_alpn_protocol()
    finally:
        writer.close()


@pytest_twisted.ensureDeferred
async def test_alpn_offers_http_1_1_only(two_sites) -> None:
    """A browser offering h2 and http/1.1 is told http/1.1; a client offering none needs none."""
    port, _ = two_sites
    assert await aio(_alpn(port, ["h2", "http/1.1"])) == "http/1.1"
    assert await aio(_alpn(port, [])) is None
