"""
Request smuggling through an upgrade the backend does not speak, on real
loopback sockets: the backend answers any first request on a connection
with a 101 that echoes ``Upgrade: foo`` and then keeps reading HTTP.  A
proxy that tunnels on that 101 hands the client's next request straight to
the backend's HTTP parser, past every rule of the proxy (here: it arrives
without the ``X-Proxied`` header the proxy sets on every request).

wstunnel, by default, never offers ``foo`` upstream and answers that 101
with a 502; nginx 1.22 on the same config (the howto's Upgrade and
Connection lines) opens the tunnel, which the last test records.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor

from nginx_support import http_body, start_nginx
from support import WAIT, aio, read_until, start_proxy, unused_ports

CONF = """
server {{
    listen {listen};
    location / {{
        proxy_pass http://127.0.0.1:{backend};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_set_header X-Proxied yes;
        {extra}
    }}
}}
"""

UPGRADE = b"GET /public HTTP/1.1\r\nHost: a\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n"
SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
BARRIER = b"GET /barrier HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
FOO_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n"


class EchoingSwitch(protocol.Protocol):
    """
    The backend: its first request (but a barrier) gets the 101, every
    later one on the connection is parsed as HTTP and answered 200 with
    its request line as the body.  Every head it parsed is kept.
    """

    def connectionMade(self) -> None:
        self.buffer = b""
        self.switched = False

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.factory.heads.append(head)
            line = head.split(b"\r\n", 1)[0]
            if self.switched or line.startswith(b"GET /barrier "):
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line))
            else:
                self.switched = True
                self.transport.write(FOO_101)


class Backend(protocol.Factory):
    protocol = EchoingSwitch
    noisy = False

    def __init__(self) -> None:
        self.heads: list[bytes] = []

    def lines(self) -> list[bytes]:
        return [head.split(b"\r\n", 1)[0] for head in self.heads]


@pytest.fixture
def backend():
    factory = Backend()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    yield factory, port.getHost().port
    port.stopListening()


@pytest.fixture
def wstunnel(tmp_path, backend):
    started = []

    def start(extra: str = "") -> int:
        conf = CONF.format(listen="127.0.0.1:0", backend=backend[1], extra=extra)
        service, port = start_proxy(tmp_path, conf)
        started.append(service)
        return port

    yield start
    for service in started:
        service.stopService()


async def smuggle(port: int, pipelined: bool) -> tuple[bytes, bytes]:
    """
    The upgrade request, then the smuggled one (in the same write, or once
    the answer's head arrived); the answer's head and everything after it
    until the proxy closes or the smuggled request's answer is in.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(UPGRADE + SMUGGLED if pipelined else UPGRADE)
        head = await read_until(reader, b"\r\n\r\n")
        if not pipelined and head.startswith(b"HTTP/1.1 101 "):
            writer.write(SMUGGLED)
        rest = b""
        while b"GET /admin" not in rest and (data := await asyncio.wait_for(reader.read(65536), WAIT)):
            rest += data
        return head, rest
    finally:
        writer.close()


async def barrier(port: int) -> None:
    """A request on a new connection, so the backend has seen all it ever will of the smuggling one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(BARRIER)
    try:
        await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("pipelined", [False, True], ids=["after-the-answer", "pipelined"])
async def test_wstunnel_refuses_the_echoed_switch(wstunnel, backend, pipelined) -> None:
    port = wstunnel()
    head, rest = await aio(smuggle(port, pipelined))
    assert head.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"GET /admin" not in rest
    await aio(barrier(port))
    factory, _ = backend
    assert factory.lines() == [b"GET /public HTTP/1.1", b"GET /barrier HTTP/1.1"]
    assert b"\r\nupgrade:" not in factory.heads[0].lower(), "foo is never offered upstream"
    assert b"\r\nconnection: close" in factory.heads[0].lower()


@pytest_twisted.ensureDeferred
async def test_wstunnel_tunnels_foo_where_the_config_allows_it(wstunnel, backend) -> None:
    """The operator's choice, by name: then the bytes after the 101 are the tunnel's, as they must be."""
    port = wstunnel("proxy_upgrade_protocols websocket foo;")
    head, rest = await aio(smuggle(port, pipelined=False))
    assert head.startswith(b"HTTP/1.1 101 ")
    assert rest.endswith(b"GET /admin HTTP/1.1")
    factory, _ = backend
    assert factory.lines() == [b"GET /public HTTP/1.1", b"GET /admin HTTP/1.1"]
    assert b"\r\nupgrade: foo" in factory.heads[0].lower()
    assert b"x-proxied" not in factory.heads[1].lower()


@pytest_twisted.ensureDeferred
async def test_nginx_tunnels_the_echoed_switch(tmp_path, backend) -> None:
    """
    nginx 1.22 relays the 101 and opens a raw tunnel: the smuggled request
    reaches the backend's parser as the client wrote it, without what the
    proxy sets.  Where wstunnel is safer; this records nginx's behaviour.
    """
    factory, backend_port = backend
    listen, = unused_ports(1)
    nginx = start_nginx(tmp_path, http_body(CONF.format(listen=f"127.0.0.1:{listen}", backend=backend_port, extra="")))
    try:
        head, rest = await aio(smuggle(listen, pipelined=False))
    finally:
        nginx.stop()
    assert head.startswith(b"HTTP/1.1 101 ")
    assert rest.endswith(b"GET /admin HTTP/1.1")
    assert factory.lines() == [b"GET /public HTTP/1.1", b"GET /admin HTTP/1.1"]
    assert b"x-proxied: yes" in factory.heads[0].lower() and b"x-proxied" not in factory.heads[1].lower()
