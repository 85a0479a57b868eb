#!/usr/bin/env python3
"""
wstunnel's own Python cost per plain GET and per WebSocket handshake, with
no sockets: the client and upstream connections are StringTransports and the
reactor a MemoryReactorClock, so what is timed is exactly the request path
(gate, h11, routing, variables, header rewriting, exchange, logging) and
nothing of the kernel or Twisted's event loop.  On a machine shared with
other work this figure is steadier than any rate (doc/performance.md):

    .venv/bin/python bench/pathcost.py [--rounds N] [--only W] [--profile W] [--access-log]

It loads the bench's own nginx-syntax file (bench/run.py's PROXY_CONF, with
the upstream ``keepalive``), optionally with an access log to /dev/null.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]  # the checkout, not an installed copy
from run import proxy_conf  # noqa: E402

from wstunnel.net.client import ProxyFactory  # noqa: E402
from wstunnel.core.headers import accept_key  # noqa: E402
from wstunnel.config.loader import load_config  # noqa: E402
from wstunnel.net.runtime import Runtime  # noqa: E402

GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + accept_key(KEY) + b"\r\n\r\n"
)


class _Transport(StringTransport):
    def loseWriteConnection(self) -> None:
        """Tunnels half-close; nothing to do here."""

    def setTcpNoDelay(self, enabled: bool) -> None:
        """The upstream protocol sets it on connecting; counted as a call, like the real one."""


class Proxy:
    """One runtime and factory on a memory reactor; the port is never listened on."""

    def __init__(self, conf: Path) -> None:
        self.runtime = Runtime.build(load_config(str(conf)))
        binding = self.runtime.config.bindings[0]
        self.key = (binding.host, binding.port)
        self.reactor = MemoryReactorClock()
        self.factory = ProxyFactory(runtime=lambda: self.runtime, key=self.key, reactor=self.reactor)
        self.upstreams: list = []

    def client(self):
        protocol = self.factory.buildProtocol(None)
        transport = _Transport(
            hostAddress=IPv4Address("TCP", self.key[0], self.key[1]),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
        )
        protocol.makeConnection(transport)
        return protocol, transport

    def upstream(self):
        """The upstream of the last request: a new connection if one was dialled, else the pooled one."""
        if self.reactor.tcpClients:
            factory = self.reactor.tcpClients.pop()[2]
            protocol = factory.buildProtocol(None)
            transport = _Transport()
            protocol.makeConnection(transport)
            self.upstreams.append(protocol)
        return self.upstreams[-1]

    def exchange(self, client, ct, request: bytes, answer: bytes, expected: Callable[[bytes], bool]):
        """One request through the proxy, answered by its upstream; what the client got is checked."""
        client.dataReceived(request)
        upstream = self.upstream()
        upstream.dataReceived(answer)
        if not expected(ct.value()):
            raise RuntimeError(f"unexpected answer {ct.value()[:200]!r}")
        return upstream


def get_loop(proxy: Proxy) -> Callable[[int], None]:
    """Keep-alive GETs; a new client connection when keepalive_requests closes one."""
    state = [proxy.client()]

    def run(n: int) -> None:
        for _ in range(n):
            client, ct = state[0]
            if ct.disconnecting:
                client.connectionLost()
                client, ct = state[0] = proxy.client()
            upstream = proxy.exchange(client, ct, GET, ANSWER, lambda got: got.endswith(b"hello, world\n"))
            ct.clear()
            upstream.transport.clear()

    return run


def handshake_loop(proxy: Proxy) -> Callable[[int], None]:
    """Connect, upgrade, 101, both sides close: one client connection each."""

    def run(n: int) -> None:
        for _ in range(n):
            client, ct = proxy.client()
            upstream = proxy.exchange(client, ct, UPGRADE, SWITCH, lambda got: got.startswith(b"HTTP/1.1 101 "))
            client.readConnectionLost()
            upstream.readConnectionLost()
            client.connectionLost()
            upstream.connectionLost()
            proxy.upstreams.clear()

    return run


LOOPS = {"get": get_loop, "handshake": handshake_loop}


def measure(loop: Callable[[int], None], n: int, rounds: int) -> float:
    """Best of ``rounds`` CPU microseconds per operation (the least disturbed round)."""
    loop(200)  # warm-up: pool, caches
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        loop(n)
        best = min(best, (time.process_time() - start) * 1e6 / n)
    return best


# Every request checked and counted, and never refused: the gate's own cost.
_LIMITS = """\
    limit_conn_zone $binary_remote_addr zone=bench:10m;
    limit_req_zone $binary_remote_addr zone=benchreq:10m rate=1000000r/s;
    limit_conn bench 1000000;
    limit_req zone=benchreq burst=1000000 nodelay;
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-n", type=int, default=2000, help="operations per round")
    parser.add_argument("--keepalive", type=int, default=32, help="upstream keepalive (0: none)")
    parser.add_argument("--access-log", action="store_true", help="log every request to /dev/null")
    parser.add_argument("--limits", action="store_true", help="limit_conn and limit_req (never reached) on every request")
    parser.add_argument("--only", choices=sorted(LOOPS), help="measure one workload (for py-spy)")
    parser.add_argument("--profile", choices=sorted(LOOPS), help="cProfile one workload instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        conf = run / "proxy.conf"
        text = proxy_conf(run, backend=9, port=8, keepalive=args.keepalive)
        if args.access_log:
            text = text.replace("access_log off;", "access_log /dev/null;")
        if args.limits:
            text = text.replace("    map $http_upgrade", _LIMITS + "    map $http_upgrade", 1)
        conf.write_text(text)
        proxy = Proxy(conf)
        if args.profile:
            loop = LOOPS[args.profile](proxy)
            loop(200)
            profiler = cProfile.Profile()
            profiler.runcall(loop, args.n)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return 0
        for name, make in LOOPS.items():
            if args.only and name != args.only:
                continue
            print(f"{name}: {measure(make(proxy), args.n, args.rounds):.1f} us CPU each", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
