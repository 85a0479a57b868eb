"""
Loopback helpers for the integration tests: a proxy started from nginx
config text, scripted raw backends, and bridges between the asyncio world
of the ``websockets`` library and Twisted (the suite runs Twisted on the
asyncio reactor, so both share one event loop).  Also the proxy on memory
transports (:class:`MemoryProxy`), for deterministic protocol tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import socket
import textwrap
from collections.abc import Sized
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from twisted.internet import defer, protocol, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from wstunnel.net.client import ProxyFactory
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config, ConfigErrors
from wstunnel.net.runtime import Runtime
from wstunnel.app.service import ProxyService

ROOT = Path(__file__).resolve().parent.parent  # the checkout
WAIT = 5.0  # the longest any single step of a loopback test may take


def aio(awaitable: Awaitable[Any]) -> defer.Deferred:
    """Await an asyncio coroutine from a Twisted test, bounded in time."""
    return defer.Deferred.fromFuture(
        asyncio.ensure_future(asyncio.wait_for(awaitable, WAIT))
    )


def aio_deferred(d: defer.Deferred) -> asyncio.Future:
    """Await a Deferred from asyncio code (the other direction of :func:`aio`).

    Awaiting the Future from a Deferred-driven coroutine works only when it has
    already fired, so a misuse would fail by timing; refuse it every time instead.
    """
    if asyncio.current_task() is None:
        raise RuntimeError("aio_deferred outside an asyncio task: await the Deferred itself")
    return d.asFuture(asyncio.get_running_loop())


def start_proxy(tmp_path: Path, conf: str) -> tuple[ProxyService, int]:
    """Load ``conf`` (nginx syntax, ``listen 127.0.0.1:0``) and start it."""
    path = tmp_path / "wstunnel.conf"
    path.write_text(conf)
    service = ProxyService(load_config(str(path)), reactor)
    service.privilegedStartService()
    service.startService()
    return service, service.ports[0].getHost().port


def write_config(directory: Path, text: str, name: str = "nginx.conf") -> str:
    """``text``, dedented and from its first line on, as the file ``name`` in ``directory``; its path."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def config_errors(directory: Path, text: str, name: str = "nginx.conf", **options: Any) -> list[str]:
    """Every error message of a config that must fail to load (``write_config``), with FILE for its path."""
    path = write_config(directory, text, name)
    with pytest.raises(ConfigErrors) as info:
        load_config(path, **options)
    return [str(e).replace(path, "FILE") for e in info.value.errors]


def load_text(path: Path, text: str) -> Config:
    """Write ``text`` to ``path`` and load it, so error messages name a real file."""
    path.write_text(text)
    return load_config(str(path))


LISTEN = ("127.0.0.1", 8080)  # the listen address every MemoryProxy config declares


class HalfCloseTransport(StringTransport):
    """A StringTransport that records a write shutdown, as TCP has."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class Dials:
    """
    The upstream side of a MemoryReactorClock: where the code under test
    dialled, and the test's part as each upstream (complete the attempt,
    refuse it, or answer at once).
    """

    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.reactor = reactor

    def dialled(self) -> list[tuple[str, int]]:
        """Every TCP connection attempt so far, in order."""
        return [(host, port) for host, port, *_ in self.reactor.tcpClients]

    def ports(self) -> list[int]:
        """The ports of :meth:`dialled`."""
        return [port for _, port in self.dialled()]

    def upstream(self, index: int = -1) -> tuple[protocol.Protocol, HalfCloseTransport]:
        """Complete connection attempt ``index``: wstunnel's upstream protocol and the transport it writes to."""
        upstream = self.reactor.tcpClients[index][2].buildProtocol(None)
        transport = HalfCloseTransport()
        upstream.makeConnection(transport)
        return upstream, transport

    def refuse(self, reason: Exception | None = None, index: int = -1) -> None:
        """Fail connection attempt ``index``, refused unless ``reason`` says otherwise."""
        failure = Failure(reason or ConnectionRefusedError())
        self.reactor.tcpClients[index][2].clientConnectionFailed(None, failure)

    def answer(self, status: bytes, body: bytes = b"", index: int = -1) -> None:
        """Complete connection attempt ``index`` and answer ``status`` with ``body`` at once."""
        upstream, _ = self.upstream(index)
        upstream.dataReceived(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


class MemoryProxy(Dials):
    """
    A config's proxy driven step by step, with no sockets and no real time.
    The test plays both peers: it opens client connections and feeds them
    bytes, sees where wstunnel dialled (``reactor`` is a MemoryReactorClock
    that records every attempt and runs every timer), completes or refuses
    each attempt and answers as the upstream, then reads what the client
    got from its transport.  Only the package's entry points are used
    (load_config, Runtime, ProxyFactory), so the protocols behind them may
    change shape freely.  The config listens on ``LISTEN``.
    """

    def __init__(self, config: Config) -> None:
        super().__init__(MemoryReactorClock())
        self.config = config
        self.runtime = Runtime.build(config)
        self.factory = ProxyFactory(runtime=lambda: self.runtime, key=LISTEN, reactor=self.reactor)
        self.client: protocol.Protocol | None = None
        self.ct: HalfCloseTransport | None = None

    def reload(self, config: Config) -> None:
        """Serve ``config`` from now on, as a SIGHUP would."""
        self.config = config
        self.runtime = Runtime.build(config)

    def connect_client(self, data: bytes = b"") -> tuple[protocol.Protocol, HalfCloseTransport]:
        """
        A new client connection that has sent ``data``; it is also kept as
        ``client`` (the protocol) and ``ct`` (its transport).
        """
        client = self.factory.buildProtocol(None)
        transport = HalfCloseTransport(
            hostAddress=IPv4Address("TCP", *LISTEN), peerAddress=IPv4Address("TCP", "127.0.0.1", 40000)
        )
        client.makeConnection(transport)
        self.client, self.ct = client, transport
        if data:
            client.dataReceived(data)
        return client, transport


def log_fields(path: Path) -> list[list[str]]:
    """The access-log lines at ``path``, each split at ``|``; none while the file does not exist."""
    if not path.exists():
        return []
    return [line.split("|") for line in path.read_text().splitlines()]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` in non-empty pieces, cut where ``cuts`` (modulo its length + 1) say."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points + [len(data)]:
        pieces.append(data[last:point])
        last = point
    return [p for p in pieces if p]


def accept_for(key: bytes) -> bytes:
    digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return base64.b64encode(digest)


def upgrade_request(path: str = "/", host: str = "localhost", key: bytes = b"dGhlIHNhbXBsZSBub25jZQ==",
                    extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


class Thresholds:
    """
    Deferreds that fire once something that only grows reaches a size, so
    a test awaits a count of bytes or lines instead of a moment.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[int, defer.Deferred]] = []

    def wait(self, size: int, now: Sized) -> defer.Deferred:
        """Fires with the value once it has ``size`` items (``now`` may do already); fails after ``WAIT``."""
        d = defer.Deferred()
        self._waiting.append((size, d))
        self.grew(now)
        return d.addTimeout(WAIT, reactor)

    def grew(self, value: Sized) -> None:
        ready = [d for n, d in self._waiting if len(value) >= n]
        self._waiting = [(n, d) for n, d in self._waiting if len(value) < n]
        for d in ready:
            d.callback(value)


@implementer(IHalfCloseableProtocol)
class ScriptedBackend(protocol.Protocol):
    """
    A raw upstream: collects the request head, then lets the test's
    ``on_head(self, head, rest)`` answer.  Everything received is kept in
    ``received``; ``eof`` fires when the proxy's FIN arrives, after which
    the backend closes too unless the factory keeps half-closed connections.
    """

    def __init__(self, factory: "BackendFactory") -> None:
        self.factory = factory
        self.buffer = b""
        self.head: bytes | None = None
        self.received = b""
        self.eof = defer.Deferred()
        self.lost = defer.Deferred()
        self.waiters = Thresholds()

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        if not self.factory.first.called:
            self.factory.first.callback(self)

    def dataReceived(self, data: bytes) -> None:
        if self.head is None:
            self.buffer += data
            if b"\r\n\r\n" in self.buffer:
                self.head, rest = self.buffer.split(b"\r\n\r\n", 1)
                self.factory.heads.append(self.head)
                self.received = rest
                self.factory.on_head(self, self.head, rest)
            return
        self.received += data
        self.waiters.grew(self.received)

    def wait_data(self, size: int) -> defer.Deferred:
        """Fires once at least ``size`` bytes arrived after the head."""
        return self.waiters.wait(size, self.received)

    def readConnectionLost(self) -> None:
        self.eof.callback(self.received)
        if not self.factory.half_close:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        if not self.eof.called:
            self.eof.callback(self.received)
        self.lost.callback(None)


class BackendFactory(protocol.Factory):
    noisy = False

    def __init__(self, on_head: Callable[[ScriptedBackend, bytes, bytes], None],
                 half_close: bool = False) -> None:
        self.on_head = on_head
        self.half_close = half_close  # keep writing after the proxy's FIN, like a real peer may
        self.heads: list[bytes] = []
        self.connections: list[ScriptedBackend] = []
        self.first: defer.Deferred = defer.Deferred()

    def buildProtocol(self, addr: Any) -> ScriptedBackend:
        return ScriptedBackend(self)


def switch_answer(head: bytes, extra: bytes = b"") -> bytes:
    """A correct 101 for the WebSocket request ``head``."""
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_for(key) + b"\r\n\r\n" + extra
    )


def switching(
    on_tunnel: Callable[[ScriptedBackend], None] = lambda backend: None,
) -> Callable[[ScriptedBackend, bytes, bytes], None]:
    """An ``on_head`` that completes the WebSocket handshake, then hands the backend to ``on_tunnel``."""

    def answer(backend: ScriptedBackend, head: bytes, rest: bytes) -> None:
        backend.transport.write(switch_answer(head))
        on_tunnel(backend)

    return answer


def ok_and_close(backend: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """An ``on_head`` that answers 200 "ok" and closes."""
    backend.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    backend.transport.loseConnection()


@implementer(IPushProducer)
class Firehose:
    """Writes ``total`` bytes of a pattern, pausing when told to (a well-behaved sender)."""

    def __init__(self, transport: Any, total: int, chunk: int = 64 * 1024) -> None:
        self.transport = transport
        self.left = total
        self.block = hashlib.sha256(b"seed").digest() * (chunk // 32)
        self.paused = False
        self.digest = hashlib.sha256()
        self.done = defer.Deferred()

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.left > 0:
            piece = self.block[: self.left]
            self.left -= len(piece)
            self.digest.update(piece)
            self.transport.write(piece)
        if self.left == 0 and not self.done.called:
            self.transport.unregisterProducer()
            self.done.callback(self.digest.hexdigest())

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.paused = True


def pouring(total: int) -> tuple[Callable[[ScriptedBackend], None], list[Firehose]]:
    """An ``on_tunnel`` for :func:`switching` that sends ``total`` bytes down each tunnel, and its hoses."""
    hoses: list[Firehose] = []

    def on_tunnel(backend: ScriptedBackend) -> None:
        hose = Firehose(backend.transport, total)
        hoses.append(hose)
        backend.transport.registerProducer(hose, True)
        hose.resumeProducing()

    return on_tunnel, hoses


def listen_backend(on_head: Callable[[ScriptedBackend, bytes, bytes], None], half_close: bool = False):
    factory = BackendFactory(on_head, half_close)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return factory, port


class KeepAliveBackend(protocol.Protocol):
    """
    A raw upstream that answers every request on its connection, bodies
    framed by Content-Length, with ``factory.answer(method, path, head,
    body)``; each request is recorded as (connection number, head, body).
    """

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.number = len(self.factory.connections)
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, rest = self.buffer.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            method, path = head.split(b" ")[:2]
            self.factory.requests.append((self.number, head, body))
            self.transport.write(self.factory.answer(method, path, head, body))

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.closed += 1
        if not self.factory.first_close.called:
            self.factory.first_close.callback(None)


class KeepAliveFactory(protocol.Factory):
    """What the connections of :class:`KeepAliveBackend` saw: ``connections``, ``requests``, ``closed``."""

    protocol = KeepAliveBackend
    noisy = False

    def __init__(self, answer: Callable[[bytes, bytes, bytes, bytes], bytes]) -> None:
        self.answer = answer
        self.connections: list[KeepAliveBackend] = []
        self.requests: list[tuple[int, bytes, bytes]] = []
        self.closed = 0
        self.first_close: defer.Deferred = defer.Deferred()


def listen_keepalive(answer: Callable[[bytes, bytes, bytes, bytes], bytes]):
    """A :class:`KeepAliveFactory` listening on a loopback port: the factory and the port."""
    factory = KeepAliveFactory(answer)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return factory, port


class AccessLines:
    """
    The access-log lines one proxy wrote, in order.  A proxy writes a line
    after the response's last byte may already have reached the client (and
    a tunnel's when it ends), so tests await a count instead of reading a
    file at some moment.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._waiters = Thresholds()

    def append(self, line: str) -> None:
        self.lines.append(line)
        self._waiters.grew(self.lines[:])

    def wait_for(self, count: int) -> defer.Deferred:
        """Fires with the lines once there are at least ``count``; fails after ``WAIT``."""
        return self._waiters.wait(count, self.lines[:])


def capture_access_log(service: object, lines: AccessLines) -> None:
    """wstunnel's lines go to their files as usual and to ``lines`` as they are written."""
    logs = service.runtime.access_logs  # type: ignore[attr-defined]
    write = logs.write

    def both(targets: tuple, line: str) -> None:
        write(targets, line)
        lines.append(line)

    logs.write = both


async def read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(marker), WAIT)


async def read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), WAIT)


async def talk(port: int, data: bytes, source: str = "127.0.0.1") -> bytes:
    """Send ``data`` on a new connection from ``source`` and read until the proxy closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


async def read_all_sampling(sock: Any, total: int, already: bytes, sample: Callable[[], None]) -> str:
    """
    Read a non-blocking socket until ``total`` bytes arrived (``already``
    counts), calling ``sample`` after each read; the SHA-256 of the bytes.
    """
    loop = asyncio.get_running_loop()
    digest = hashlib.sha256(already)
    received = len(already)
    while received < total:
        data = await loop.sock_recv(sock, 1024 * 1024)
        assert data, "connection closed early"
        received += len(data)
        digest.update(data)
        sample()
    return digest.hexdigest()


async def slow_reader(port: int, request: bytes) -> Any:
    """A non-blocking socket with a small receive buffer that has sent ``request`` and reads nothing yet."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_sendall(sock, request)
    return sock


def _ephemeral_low() -> int:
    """Where the kernel's ephemeral ports start (the local ports of bind(0) and connect)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def unused_ports(count: int) -> list[int]:
    """
    ``count`` distinct loopback ports that are free now and lie below the
    ephemeral range, for a process that binds them a moment later (nginx,
    a twistd subprocess).  A port from ``bind(0)`` is an ephemeral one, and
    between its release and the later bind any outgoing connection of the
    suite may take it as its local port: nginx then failed with EADDRINUSE
    about once in fifteen full runs.  Below the range only another listener
    could take it, and every listener of the suite binds port 0.
    """
    low = _ephemeral_low()
    if low <= 10000:
        raise RuntimeError(f"the ephemeral port range starts at {low}: no ports below it to reserve")
    pick = random.Random()
    ports: list[int] = []
    for _ in range(100 * count):
        port = pick.randrange(10000, low)
        if port in ports:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"found only {len(ports)} of {count} free loopback ports below {low}")
