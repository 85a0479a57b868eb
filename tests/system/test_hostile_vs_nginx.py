"""
The same raw-socket attacks against wstunnel and nginx 1.22 on one config,
each proxy in front of its own recording backend (issue 16).

The proxy sets ``X-Proxied: yes`` on every request it forwards, so a head
that reaches the backend without it is one the client hid from the proxy:
bytes the proxy relayed as a body or a tunnel that the backend parsed as a
request.  The backend frames bodies as RFC 9112 says (chunked wins over a
length) and also flags ambiguous framing that reached it (two lengths, a
length with a transfer coding, a coding other than ``chunked``, a folded
line) and raw control bytes in a head.  Each case ends in one outcome:

- ``unsafe``: a hidden head, ambiguous framing or a control byte reached the backend;
- ``refused``: the client got an error status or a close, nothing unsafe passed;
- ``answered``: the client got a 2xx or 101, nothing unsafe passed.

wstunnel must never be ``unsafe``; nginx's outcome is asserted as measured,
so the table of where wstunnel is safer stays true.  Measured:

============================  ===========================  ======================
case                          wstunnel                     nginx 1.22
============================  ===========================  ======================
cl-te                         refused (400)                refused (400)
two-content-lengths           refused (400)                refused (400)
te-obs-fold                   refused (400)                refused (400)
te-chunked-identity           refused (501)                refused (501)
chunk-size-2^64-1             refused (400)                refused (400)
websocket-101-bad-accept      refused (502)                **unsafe**: tunnels
websocket-answered-200        answered                     answered
h2c-upgrade                   answered, h2c not offered    **unsafe**: tunnels
raw-control-byte-in-target    refused (400)                refused (400)
encoded-nul-in-uri            refused (400)                refused (400)
encoded-crlf-in-uri           refused (400)                **unsafe**: splits
half-close-after-request      closed, no answer            closed, no answer
reset-mid-body                still serves                 still serves
============================  ===========================  ======================

A FIN after a whole request counts as the client going away in both (the
request is dropped, logged 499), so no answer arrives.  Not a case: a
``%01`` in the target decodes into ``$uri`` and reaches the backend in the
``X-Path`` value through both proxies; it splits nothing.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct

import pytest
import pytest_twisted
from attrs import frozen
from twisted.internet import defer, interfaces, protocol, reactor
from zope.interface import implementer

from nginx_support import http_body, start_nginx
from support import WAIT, aio, aio_deferred, start_proxy, unused_ports

CONF = """
server {
    listen {listen};
    location / {
        proxy_pass http://127.0.0.1:{backend};
        proxy_http_version 1.1;
        proxy_set_header X-Proxied yes;
        proxy_set_header X-Path $uri;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
}
"""

HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
END = b"GET /end HTTP/1.1\r\nHost: a\r\n\r\n"
UNSAFE, REFUSED, ANSWERED = "unsafe", "refused", "answered"
CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,8}")


# ---------------------------------------------------------------- the recording backend


@implementer(interfaces.IHalfCloseableProtocol)
class Recorder(protocol.Protocol):
    """
    Parses HTTP/1.1 for as long as the connection lasts, whatever it
    answered before: a 101 to a ``/switch`` upgrade does not switch it, so
    bytes a proxy tunnels after it are parsed as requests, as a backend
    that never meant to switch would.
    """

    def connectionMade(self) -> None:
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while (used := self.one_request()) is not None:
            self.buffer = self.buffer[used:]

    def one_request(self) -> int | None:
        """The bytes of the first whole request in the buffer, answered; None if it is not all in."""
        if b"\r\n\r\n" not in self.buffer:
            return None
        head = self.buffer.split(b"\r\n\r\n", 1)[0]
        start = len(head) + 4
        length = body_length(head, self.buffer[start:])
        if length is None:
            return None
        self.factory.record(head)
        if b" /hold " not in head.split(b"\r\n", 1)[0]:
            self.transport.write(answer(head))
        return start + length

    def readConnectionLost(self) -> None:
        """A proxy's FIN after a request: its answer is flushed before the close."""
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


def body_length(head: bytes, rest: bytes) -> int | None:
    """Bytes of body in ``rest`` (None while incomplete); chunked if named, else Content-Length."""
    fields = [line.partition(b":") for line in head.split(b"\r\n")[1:]]
    coding = b",".join(v for n, _, v in fields if n.strip().lower() == b"transfer-encoding")
    if b"chunked" in coding.lower():
        return chunked_length(rest)
    lengths = [v for n, _, v in fields if n.strip().lower() == b"content-length"]
    size = int(lengths[0]) if lengths and lengths[0].strip().isdigit() else 0
    return size if len(rest) >= size else None


def chunked_length(rest: bytes) -> int | None:
    """An unparsable or oversized chunk size waits forever, as far as this backend goes."""
    at = 0
    while (end := rest.find(b"\r\n", at)) >= 0:
        size = rest[at:end].split(b";")[0].strip()
        if not CHUNK_SIZE.fullmatch(size):
            return None
        at = end + 2 + int(size, 16) + 2
        if int(size, 16) == 0:
            return at if len(rest) >= at else None
    return None


def answer(head: bytes) -> bytes:
    """A 101 echoing the client's Upgrade for ``/switch`` (with a wrong accept), else a 200 naming the line."""
    line = head.split(b"\r\n", 1)[0]
    upgrade = re.search(rb"\r\nupgrade:[ \t]*([^\r]*)", head, re.I)
    if upgrade and b" /switch" in line:
        return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: bm90IHRoZSBhY2NlcHQ=\r\n\r\n" % upgrade.group(1))
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line)


class RecorderFactory(protocol.Factory):
    protocol = Recorder
    noisy = False

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.unsafe: list[str] = []
        self.heard = defer.Deferred()

    def record(self, head: bytes) -> None:
        self.heads.append(head)
        if not self.heard.called:
            self.heard.callback(head)
        self.unsafe.extend(flaws(head))


def flaws(head: bytes) -> list[str]:
    lower = head.lower()
    names = [line.partition(b":")[0].strip().lower() for line in lower.split(b"\r\n")[1:]]
    found = []
    if b"\r\nx-proxied: yes" not in lower:
        found.append("hidden head %r" % head.split(b"\r\n", 1)[0])
    if names.count(b"content-length") > 1 or (b"content-length" in names and b"transfer-encoding" in names):
        found.append("ambiguous length")
    if re.search(rb"\r\ntransfer-encoding:(?![ \t]*chunked\r)", lower + b"\r"):
        found.append("transfer coding other than chunked")
    if re.search(rb"\r\n[ \t]", head):
        found.append("folded line")
    if CONTROL.search(head):
        found.append("control byte")
    return found


# ---------------------------------------------------------------- the client


@frozen
class Case:
    """``steps`` are written in turn, each after an answer's head to the one before; then ``end`` follows."""

    name: str
    steps: tuple[bytes, ...]
    wstunnel: str
    nginx: str
    end: str = "pipeline"  # or "half-close", or "reset"


def post(fields: bytes, body: bytes) -> bytes:
    return b"POST / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n" + body


CL_TE_BODY = b"0\r\n\r\n" + HIDDEN
WS = (b"GET /switch HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
H2C = (b"GET /switch HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
       b"Connection: Upgrade, HTTP2-Settings\r\n\r\n")

CASES = [
    Case("cl-te", (post(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(CL_TE_BODY), CL_TE_BODY),),
         REFUSED, REFUSED),
    Case("two-content-lengths", (post(b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(HIDDEN), HIDDEN),),
         REFUSED, REFUSED),
    Case("te-obs-fold", (post(b"Transfer-Encoding:\r\n chunked\r\nContent-Length: %d\r\n" % len(CL_TE_BODY),
                              CL_TE_BODY),), REFUSED, REFUSED),
    Case("te-chunked-identity", (post(b"Transfer-Encoding: chunked, identity\r\n", CL_TE_BODY),), REFUSED, REFUSED),
    Case("chunk-size-2^64-1", (post(b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffff\r\n" + HIDDEN),),
         REFUSED, REFUSED),
    Case("websocket-101-bad-accept", (WS, HIDDEN), REFUSED, UNSAFE),
    Case("websocket-answered-200", (WS.replace(b"/switch", b"/plain"), HIDDEN), ANSWERED, ANSWERED),
    Case("h2c-upgrade", (H2C, HIDDEN), ANSWERED, UNSAFE),
    Case("raw-control-byte-in-target", (b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n",), REFUSED, REFUSED),
    Case("encoded-nul-in-uri", (b"GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n",), REFUSED, REFUSED),
    Case("encoded-crlf-in-uri", (b"GET /a%0d%0a%0d%0aGET%20/smuggled%20HTTP/1.1%0d%0aHost:%20a HTTP/1.1\r\n"
                                 b"Host: a\r\n\r\n",), REFUSED, UNSAFE),
    Case("half-close-after-request", (b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n",), REFUSED, REFUSED, "half-close"),
    Case("reset-mid-body", (post(b"Content-Length: 100\r\n", b"0123456789"),), ANSWERED, ANSWERED, "reset"),
]


async def attack(port: int, case: Case, backend: RecorderFactory) -> bytes:
    """Everything the client reads: until the proxy closes or the answer to ``END`` is in."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        received = b""
        for index, step in enumerate(case.steps):
            writer.write(step + (END if index == len(case.steps) - 1 and case.end == "pipeline" else b""))
            if index < len(case.steps) - 1:
                received += await read_head(reader)
                if not received.startswith(b"HTTP/1.1 1") and not received.startswith(b"HTTP/1.1 2"):
                    return received
        if case.end == "reset":
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return await fresh_get(port)
        if case.end == "half-close":
            await asyncio.wait_for(aio_deferred(backend.heard), WAIT)
            writer.write_eof()
        while b" /end HTTP" not in received and (data := await asyncio.wait_for(reader.read(65536), WAIT)):
            received += data
        return received
    finally:
        writer.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    except asyncio.IncompleteReadError as closed:
        return closed.partial


async def fresh_get(port: int) -> bytes:
    """The proxy still serves after a reset: a GET on a new connection, read to its close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


def outcome(received: bytes, backend: RecorderFactory) -> str:
    if backend.unsafe:
        return UNSAFE
    return ANSWERED if re.match(rb"HTTP/1\.1 (101|2\d\d) ", received) else REFUSED


# ---------------------------------------------------------------- the two proxies


@pytest.fixture
def backends():
    started = []

    def start() -> tuple[RecorderFactory, int]:
        factory = RecorderFactory()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        started.append(port)
        return factory, port.getHost().port

    yield start
    for port in started:
        port.stopListening()


async def on_wstunnel(tmp_path, backends, case: Case) -> tuple[str, RecorderFactory]:
    factory, backend_port = backends()
    service, port = start_proxy(tmp_path, CONF.replace("{listen}", "127.0.0.1:0").replace("{backend}", str(backend_port)))
    try:
        received = await aio(attack(port, case, factory))
    finally:
        service.stopService()
    return outcome(received, factory), factory


async def on_nginx(tmp_path, backends, case: Case) -> tuple[str, RecorderFactory]:
    factory, backend_port = backends()
    listen, = unused_ports(1)
    conf = CONF.replace("{listen}", f"127.0.0.1:{listen}").replace("{backend}", str(backend_port))
    nginx = start_nginx(tmp_path, http_body(conf))
    try:
        received = await aio(attack(listen, case, factory))
    finally:
        nginx.stop()
    return outcome(received, factory), factory


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_same_attack_on_both(tmp_path, backends, case: Case) -> None:
    ours, ours_backend = await on_wstunnel(tmp_path, backends, case)
    theirs, theirs_backend = await on_nginx(tmp_path, backends, case)
    assert (ours, theirs) == (case.wstunnel, case.nginx), (ours_backend.unsafe, theirs_backend.unsafe)
    assert ours != UNSAFE
