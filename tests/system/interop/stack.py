"""
What an interop cell runs against: the scripted servers, the socket.io
server and one wstunnel in front of all of them, and the transports a
client can reach a server by.

``direct`` (client to server, no proxy) is the baseline column: a cell that
fails there too is the peers' own bug, not wstunnel's.  A transport is a
scheme and whether it goes through the proxy: ``ws`` reaches wstunnel's
plain listener, ``wss`` its TLS listener, whose certificate is issued by a
CA made for the run (tests/tls_support.py) that every client is told to
trust.  The servers speak plain WebSocket only, so wss has no direct column.

Three socket.io backends sit behind one ``upstream socketio`` with
``ip_hash``; the direct column reaches the first one.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "Transport", "TRANSPORTS", "SOCKETIO_BACKENDS", "Stack", "PROXY_CONF", "free_port", "start_node_server",
    "start_socketio_server",
]

PEERS = Path(__file__).parent / "peers"


@attrs.frozen
class Transport:
    name: str
    scheme: str  # "ws" or "wss"; the page and socket.io use the matching http scheme
    via_proxy: bool

    @property
    def http_scheme(self) -> str:
        return "https" if self.scheme == "wss" else "http"


TRANSPORTS = (Transport("direct", "ws", False), Transport("ws", "ws", True), Transport("wss", "wss", True))
SOCKETIO_BACKENDS = ("socketio", "socketio-2", "socketio-3")

# Every server behind one wstunnel, one location each, as a user would.
PROXY_CONF = """\
upstream socketio {{
    ip_hash;
    server 127.0.0.1:{socketio};
    server 127.0.0.1:{socketio-2};
    server 127.0.0.1:{socketio-3};
}}
server {{
    listen 127.0.0.1:0;
    listen 127.0.0.1:{tls} ssl;
    ssl_certificate {certificate};
    ssl_certificate_key {key};
    location /websockets/ {{ proxy_pass http://127.0.0.1:{websockets}; }}
    location /autobahn/ {{ proxy_pass http://127.0.0.1:{autobahn}; }}
    location /node-ws/ {{ proxy_pass http://127.0.0.1:{node-ws}; }}
    location /deflate/ {{ proxy_pass http://127.0.0.1:{deflate}; }}
    location /socket.io/ {{ proxy_pass http://socketio; }}
}}
"""


@attrs.frozen
class Stack:
    ports: dict[str, int]  # server name -> its own port
    proxy_port: int
    tls_port: int
    ca_path: str  # the PEM of the CA that issued the TLS listener's certificate

    def port(self, transport: Transport, server: str) -> int:
        if not transport.via_proxy:
            return self.ports[server]
        return self.tls_port if transport.scheme == "wss" else self.proxy_port

    def ws_url(self, transport: Transport, server: str, cid: str) -> str:
        return f"{transport.scheme}://127.0.0.1:{self.port(transport, server)}/{server}/?id={cid}"

    def http_url(self, transport: Transport, server: str, path: str) -> str:
        return f"{transport.http_scheme}://127.0.0.1:{self.port(transport, server)}/{server}/{path}"

    def report_url(self, server: str) -> str:
        """Reports are read straight from the server, whatever the cell's transport."""
        return f"ws://127.0.0.1:{self.ports[server]}/{server}/?id=report"


def free_port() -> int:
    """A loopback port that was free a moment ago, for the TLS ``listen`` (port 0 is taken by the plain one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _first_line(process: subprocess.Popen, what: str) -> Any:
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{what} exited ({process.wait()}) before listening")
    return json.loads(line)


def start_node_server(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """``peers/node_server.js``; it prints its port as its first line."""
    process = subprocess.Popen(["node", str(PEERS / "node_server.js")], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        return process, _first_line(process, "node_server.js")["port"]
    except BaseException:
        process.kill()
        process.wait()
        raise


def start_socketio_server(backend: str) -> tuple[subprocess.Popen, int]:
    """``peers/sio_app.py`` under uvicorn on a socket bound here, named ``backend``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections queue from now on, so there is no readiness race
    port = sock.getsockname()[1]
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(PEERS), "--fd", str(sock.fileno()),
               "--log-level", "warning", "--no-access-log", "sio_app:app"]
    with sock:
        process = subprocess.Popen(command, pass_fds=[sock.fileno()], stdin=subprocess.DEVNULL,
                                   env={**os.environ, "SIO_BACKEND": backend})
    return process, port
