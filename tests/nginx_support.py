"""
A real nginx on loopback, for tests that run one config under nginx and
wstunnel and compare what clients and backends see: :class:`Twins` starts
both (each with its own scripted backend), and the client helpers send the
same raw request to each and read the answers apart.

nginx runs in the foreground as one process (``daemon off; master_process
off``) with everything it writes kept under the test's directory.  It cannot
listen on port 0, so the test reserves free loopback ports first.  Readiness
needs no polling: nginx binds its listeners, writes its pid file, then
points its stderr at the error log, so the end of its stderr pipe with the
pid file in place means it is accepting.
"""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import pytest
from attrs import define, field, frozen
from twisted.internet import protocol, reactor
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from support import (
    WAIT,
    AccessLines,
    BackendFactory,
    ScriptedBackend,
    aio,
    capture_access_log,
    listen_backend,
    read_exactly,
    read_until,
    start_proxy,
    switch_answer,
    unused_ports,
)

__all__ = [
    "Answer",
    "Headers",
    "Nginx",
    "NGINX_CHASH",
    "NGINX_HASH",
    "NGINX_IP_HASH",
    "NGINX_PACKAGE",
    "Response",
    "Side",
    "Twins",
    "listen_syslog",
    "ask",
    "ask_both",
    "echo_answer",
    "echo_through_both",
    "find_nginx",
    "http_body",
    "parse_request_head",
    "read_response",
    "request",
    "scripted_answer",
    "start_nginx",
]

NGINX_PACKAGE = "nginx-light"
STARTUP = 5.0  # seconds nginx may take to bind its listeners
SHUTDOWN = 5.0  # seconds it may take to exit after SIGTERM

_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

# nginx's peer (the last digit of 1, 2, 3 for three server lines) for ip_hash over
# 127.0.N.1 and for hash and hash consistent over keyK, N and K from 0 to 29.
NGINX_IP_HASH = "312" * 10
NGINX_HASH = "321233211222232121222132231131"
NGINX_CHASH = "313311113223321331133221311321"
Headers = Counter  # (name, value) pairs as a multiset: order is not compared


@frozen
class Nginx:
    """One running nginx, stopped by its own PID and nothing else."""

    process: subprocess.Popen
    error_log: Path

    def stop(self) -> None:
        """
        SIGTERM, not SIGQUIT: a graceful quit waits for open tunnels to end,
        a fast shutdown closes them, which is what a finished test wants.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(SHUTDOWN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(SHUTDOWN)
            pytest.fail(f"nginx (pid {self.process.pid}) ignored SIGTERM for {SHUTDOWN} s; "
                        f"see {self.error_log}")


def find_nginx() -> str:
    """The nginx binary; its absence fails the test with the package to install."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            f"nginx is not installed: the parity tests need it as their oracle. "
            f"Install the Debian package {NGINX_PACKAGE} (.ci/run does)."
        )
    return found


def _main_conf(root: Path, http_body: str) -> str:
    temp = "\n".join(f"    {name}_temp_path {root / name};" for name in _TEMP_PATHS)
    return (
        f"daemon off;\nmaster_process off;\npid {root / 'nginx.pid'};\n"
        f"error_log {root / 'error.log'} info;\nevents {{}}\n"
        f"http {{\n    access_log {root / 'access.log'};\n{temp}\n{http_body}\n}}\n"
    )


def start_nginx(tmp_path: Path, http_body: str) -> Nginx:
    """
    Run nginx with ``http_body`` as the content of its ``http`` block (its
    ``listen`` lines name reserved ports) and return once it accepts.
    """
    root = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp_path))
    conf = root / "nginx.conf"
    conf.write_text(_main_conf(root, http_body))
    process = subprocess.Popen(
        [find_nginx(), "-p", str(root), "-c", str(conf), "-e", "stderr"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    nginx = Nginx(process, root / "error.log")
    startup = _read_until_eof(process, STARTUP)
    pid_file = root / "nginx.pid"
    if not pid_file.exists() or pid_file.read_text().strip() != str(process.pid):
        process.wait(SHUTDOWN)
        pytest.fail(f"nginx exited with {process.returncode}: {startup}\n{conf.read_text()}")
    return nginx


def _read_until_eof(process: subprocess.Popen, timeout: float) -> str:
    """nginx's stderr until it closes (listeners bound) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    chunks = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0 and selector.select(left):
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            process.kill()
            process.wait(SHUTDOWN)
            pytest.fail(f"nginx did not start within {timeout} s: {b''.join(chunks)!r}")
    process.stderr.close()
    return b"".join(chunks).decode(errors="replace")


# ---------------------------------------------------------------- scripted backends

Answer = Callable[[ScriptedBackend, bytes, bytes], None]


def echo_answer(b: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """A 101 for an upgrade, else a 200 naming the request line; then close."""
    if b"\r\nupgrade:" in head.lower():
        b.transport.write(switch_answer(head))
        return
    line = head.split(b"\r\n", 1)[0]
    b.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line))
    b.transport.loseConnection()


def scripted_answer(response: bytes) -> Answer:
    def answer(b: ScriptedBackend, head: bytes, rest: bytes) -> None:
        b.transport.write(response)
        b.transport.loseConnection()
    return answer


def parse_request_head(head: bytes) -> tuple[bytes, Headers]:
    line, *fields = head.split(b"\r\n")
    return line, Counter(_field(f) for f in fields)


def _field(line: bytes) -> tuple[bytes, bytes]:
    name, _, value = line.partition(b":")
    return name, value.strip()


# ---------------------------------------------------------------- the two proxies


# ---------------------------------------------------------------- access-log lines, awaited

SYSLOG_TAG = "parity"


class _Syslog(protocol.DatagramProtocol):
    """nginx's ``access_log syslog:``: one datagram a line, ``<PRI>TIMESTAMP TAG: LINE``."""

    noisy = False

    def __init__(self, lines: AccessLines) -> None:
        self.lines = lines

    def datagramReceived(self, datagram: bytes, addr: object) -> None:
        self.lines.append(datagram.decode().split(f" {SYSLOG_TAG}: ", 1)[1])


def listen_syslog(lines: AccessLines) -> tuple[object, str]:
    """A loopback syslog receiver for ``lines``: its port, and the ``access_log`` target naming it."""
    port = reactor.listenUDP(0, _Syslog(lines), interface="127.0.0.1")
    target = f"syslog:server=127.0.0.1:{port.getHost().port},tag={SYSLOG_TAG},nohostname"
    return port, target


@frozen
class Side:
    """One proxy under test and the backend only it talks to."""

    name: str
    port: int
    backend: BackendFactory
    backend_port: int
    log: AccessLines  # the lines its ``access_log {log}`` wrote, if the config says so

    def head(self, index: int) -> tuple[bytes, Headers]:
        """A request head the backend received, its own port (in $proxy_host) made neutral."""
        head = self.backend.heads[index]
        return parse_request_head(head.replace(b":%d" % self.backend_port, b":BACKEND"))

    def heads(self) -> list[tuple[bytes, Headers]]:
        return [self.head(i) for i in range(len(self.backend.heads))]


@define
class Twins:
    """Starts a config under wstunnel and nginx; stops both and their backends."""

    tmp_path: Path
    services: list = field(factory=list)
    nginxes: list[Nginx] = field(factory=list)
    backend_ports: list = field(factory=list)
    factories: list[BackendFactory] = field(factory=list)
    syslogs: list = field(factory=list)

    def start(self, conf: str, answer: Answer | None = None,
              backend_port: int | None = None) -> list[Side]:
        """
        ``conf`` says ``{listen}`` for the listen address and ``{backend}``
        for the backend's port; without ``backend_port`` each proxy gets its
        own scripted backend running ``answer``.  ``{log}`` names an access
        log target whose lines each side's ``log`` collects (nginx's through
        syslog, wstunnel's file as written).
        """
        sides = []
        nginx_port, = unused_ports(1)
        for name, listen in (("wstunnel", "127.0.0.1:0"), ("nginx", f"127.0.0.1:{nginx_port}")):
            factory, bport = listen_backend(answer or echo_answer)
            self.factories.append(factory)
            self.backend_ports.append(bport)
            upstream = backend_port or bport.getHost().port
            text = conf.replace("{listen}", listen).replace("{backend}", str(upstream))
            log = AccessLines()
            if name == "wstunnel":
                text = text.replace("{log}", str(self.tmp_path / "access.log"))
                service, port = start_proxy(self.tmp_path, text)
                self.services.append(service)
                capture_access_log(service, log)
            else:
                syslog, target = listen_syslog(log)
                self.syslogs.append(syslog)
                self.nginxes.append(start_nginx(self.tmp_path, http_body(text.replace("{log}", target))))
                port = nginx_port
            sides.append(Side(name, port, factory, upstream, log))
        return sides

    async def stop(self) -> None:
        try:
            for nginx in self.nginxes:
                nginx.stop()
        finally:
            await self._stop_in_process()

    async def _stop_in_process(self) -> None:
        for service in self.services:
            service.stopService()
        for factory in self.factories:
            for conn in factory.connections:
                conn.transport.abortConnection()
        for bport in self.backend_ports + self.syslogs:
            await bport.stopListening()


def http_body(text: str) -> str:
    """The inside of nginx's ``http`` block: a snippet as is, else its ``http`` block's content."""
    match = re.search(r"^http\s*\{", text, re.M)
    return text[match.end():text.rindex("}")] if match else text


# ---------------------------------------------------------------- the client side


@frozen
class Response:
    status: bytes  # the status line
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes  # de-chunked
    chunked: bool

    def comparable(self) -> Headers:
        """Headers as a multiset, with the proxy's own Server and Date values blanked."""
        return Counter(
            (n, b"*" if n.lower() in (b"server", b"date") else v) for n, v in self.headers
        )

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


async def read_response(reader: asyncio.StreamReader, method: bytes = b"GET") -> Response:
    head = await read_until(reader, b"\r\n\r\n")
    status, *fields = head[:-4].split(b"\r\n")
    headers = tuple(_field(f) for f in fields)
    code = int(status.split()[1])
    lowered = {n.lower(): v for n, v in headers}
    chunked = lowered.get(b"transfer-encoding", b"").lower() == b"chunked"
    if method == b"HEAD" or code < 200 or code in (204, 304):
        body = b""
    elif chunked:
        body = await _read_chunks(reader)
    elif b"content-length" in lowered:
        body = await read_exactly(reader, int(lowered[b"content-length"]))
    else:
        body = await asyncio.wait_for(reader.read(), WAIT)
    return Response(status, headers, body, chunked)


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while size := int((await read_until(reader, b"\r\n")).split(b";")[0], 16):
        body += await read_exactly(reader, size)
        await read_exactly(reader, 2)
    await read_until(reader, b"\r\n")
    return body


async def ask(port: int, request: bytes) -> Response:
    """One request on a fresh connection; the method decides whether a body follows."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await read_response(reader, request.split(b" ", 1)[0])
    finally:
        writer.close()


async def ask_both(sides: list[Side], request: bytes) -> dict[str, Response]:
    return {side.name: await aio(ask(side.port, request)) for side in sides}


async def echo_through_both(twins: Twins, conf: str, url: Callable[[Side], str], **options) -> list[str]:
    """
    A websockets session (``connect(url(side), **options)``) through each
    proxy to an echo backend; the sides that echoed every message.
    """
    talked = []

    async def echo(ws) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        for side in twins.start(conf, backend_port=server.sockets[0].getsockname()[1]):
            async with connect(url(side), **options) as ws:
                for message in ["hello", b"\x00\x01binary", "x" * 70_000]:
                    await ws.send(message)
                    assert await ws.recv() == message, side.name
            talked.append(side.name)
    return talked


def request(path: str = "/", host: str = "localhost", method: str = "GET",
            extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
