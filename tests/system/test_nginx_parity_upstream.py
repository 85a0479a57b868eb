"""
nginx as the oracle for upstream groups: both proxies run the same
``upstream`` blocks in front of the same scripted peers (each answers with
its own name), and each one's access log says which peers a request tried
(``$upstream_addr``) and what they answered (``$upstream_status``).  The
lines are compared with peer addresses replaced by the peers' names.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted

from support import WAIT, aio, listen_backend, read_until, switch_answer, upgrade_request
from nginx_support import NGINX_HASH, Side

LOG = "log_format up '$remote_addr $request_uri|$upstream_addr|$upstream_status';\n"
HOWTO = """
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
"""


@pytest_twisted.async_yield_fixture
async def peers(refused_port):
    """``peers.add(name, status)``: a peer answering with ``name``; ``peers.refused`` refuses."""

    class Peers:
        def __init__(self) -> None:
            self.ports: dict[str, int] = {"R": refused_port}
            self.listening: list = []

        def add(self, name: str, status: bytes = b"200 OK") -> int:
            def answer(b, head, rest) -> None:
                if b"\r\nupgrade: websocket" in head.lower():
                    b.transport.write(switch_answer(head, name.encode()))
                    return
                b.transport.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                                  % (status, len(name), name.encode()))
                b.transport.loseConnection()

            factory, port = listen_backend(answer)
            self.listening.append((factory, port))
            self.ports[name] = port.getHost().port
            return self.ports[name]

        def conf(self, text: str) -> str:
            """``{name}`` placeholders become the peers' ports."""
            for name, port in self.ports.items():
                text = text.replace("{%s}" % name, str(port))
            return LOG + text

        def names(self, line: str) -> str:
            """A log line with each peer's address written as its name."""
            for name, port in self.ports.items():
                line = line.replace(f"127.0.0.1:{port}", name)
            return line

    found = Peers()
    yield found
    for factory, port in found.listening:
        for conn in factory.connections:
            conn.transport.abortConnection()
        await port.stopListening()


async def ask_from(port: int, raw: bytes, source: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(raw)
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


async def run(side: Side, targets: list[str], source: str = "127.0.0.1") -> list[bytes]:
    """Each target in turn on a new connection, its log line awaited before the next; the bodies."""
    bodies = []
    for target in targets:
        before = len(side.log.lines)
        raw = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        bodies.append((await aio(ask_from(side.port, raw, source))).split(b"\r\n\r\n", 1)[1])
        await side.log.wait_for(before + 1)
    return bodies


async def logs_of(sides: list[Side], targets: list[str], peers) -> dict[str, list[str]]:
    """Every side runs ``targets``; its log lines with peers named, minus the client address."""
    for side in sides:
        await run(side, targets)
    return {side.name: [peers.names(line.split(" ", 1)[1]) for line in side.log.lines] for side in sides}


def chosen(lines: list[str]) -> str:
    """The peers of single-attempt lines, as one string."""
    return "".join(line.split("|")[1] for line in lines)


GROUP = """
upstream u {
    %s
    server 127.0.0.1:{a}%s;
    server 127.0.0.1:{b};
    server 127.0.0.1:{c};
}
server { listen {listen}; access_log {log} up; location / { proxy_pass http://u; } }
"""


@pytest_twisted.ensureDeferred
async def test_weighted_round_robin_5_1_1(twins, peers) -> None:
    for name in "abc":
        peers.add(name)
    sides = twins.start(peers.conf(GROUP % ("", " weight=5")))
    logs = await logs_of(sides, [f"/?n={n}" for n in range(7)], peers)
    assert logs["wstunnel"] == logs["nginx"]
    assert chosen(logs["nginx"]) == "aabacaa"
    assert all(line.endswith("|200") for line in logs["nginx"])


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("method", ["hash $arg_k;", "hash $arg_k consistent;"])
async def test_hash_of_a_query_argument_over_30_keys(twins, peers, method) -> None:
    for name in "abc":
        peers.add(name)
    sides = twins.start(peers.conf(GROUP % (method, "")))
    logs = await logs_of(sides, [f"/?k=key{k}" for k in range(30)], peers)
    assert logs["wstunnel"] == logs["nginx"]
    assert set(chosen(logs["nginx"])) == {"a", "b", "c"}
    if "consistent" not in method:
        # The picks nginx_support recorded for the balancer's unit tests (peer N is the Nth server line).
        assert chosen(logs["nginx"]) == NGINX_HASH.translate(str.maketrans("123", "abc"))


@pytest_twisted.ensureDeferred
async def test_ip_hash_keeps_each_client_on_one_peer(twins, peers) -> None:
    """Clients on 127.0.N.1 (Linux routes 127/8 to loopback); ip_hash keys on the first three bytes."""
    for name in "abc":
        peers.add(name)
    sides = twins.start(peers.conf(GROUP % ("ip_hash;", "")))
    clients = [f"127.0.{n}.1" for n in range(6)]
    seen = {}
    for side in sides:
        seen[side.name] = [[body.decode() for body in await run(side, ["/"] * 3, source)]
                           for source in clients]
    assert seen["wstunnel"] == seen["nginx"]
    assert all(len(set(bodies)) == 1 for bodies in seen["nginx"])
    assert len({bodies[0] for bodies in seen["nginx"]}) > 1


@pytest_twisted.ensureDeferred
async def test_next_upstream_http_404_with_two_tries(twins, peers) -> None:
    for name in "abc":
        peers.add(name, b"404 Not Found")
    conf = GROUP % ("", "")
    conf = conf.replace("proxy_pass http://u;",
                        "proxy_pass http://u; proxy_next_upstream http_404; proxy_next_upstream_tries 2;")
    sides = twins.start(peers.conf(conf))
    bodies = {}
    for side in sides:
        bodies[side.name] = await run(side, ["/x"])
    logs = {side.name: [peers.names(line.split(" ", 1)[1]) for line in side.log.lines] for side in sides}
    assert logs["wstunnel"] == logs["nginx"] == ["/x|a, b|404, 404"]
    assert bodies["wstunnel"] == bodies["nginx"] == [b"b"]  # the last peer's page


REFUSED_FIRST = """
upstream u { server 127.0.0.1:{R}; server 127.0.0.1:{a}; }
upstream with_backup { server 127.0.0.1:{a}; server 127.0.0.1:{b} backup; }
upstream refused_with_backup { server 127.0.0.1:{R}; server 127.0.0.1:{b} backup; }
server {
    listen {listen};
    access_log {log} up;
    location /u/ { proxy_pass http://u; }
    location /with_backup/ { proxy_pass http://with_backup; }
    location /refused_with_backup/ { proxy_pass http://refused_with_backup; }
}
"""


@pytest_twisted.ensureDeferred
async def test_a_refused_peer_is_listed_before_the_good_one(twins, peers) -> None:
    peers.add("a")
    peers.add("b")
    sides = twins.start(peers.conf(REFUSED_FIRST))
    logs = await logs_of(sides, ["/u/1", "/u/2", "/u/3"], peers)
    assert logs["wstunnel"] == logs["nginx"]
    # max_fails=1: after its failure the refusing peer sits out fail_timeout.
    assert logs["nginx"] == ["/u/1|R, a|502, 200", "/u/2|a|200", "/u/3|a|200"]


@pytest_twisted.ensureDeferred
async def test_backup_only_when_the_primary_refuses(twins, peers) -> None:
    peers.add("a")
    peers.add("b")
    sides = twins.start(peers.conf(REFUSED_FIRST))
    targets = ["/with_backup/1", "/with_backup/2", "/with_backup/3",
               "/refused_with_backup/1", "/refused_with_backup/2"]
    logs = await logs_of(sides, targets, peers)
    assert logs["wstunnel"] == logs["nginx"]
    assert logs["nginx"] == [
        "/with_backup/1|a|200", "/with_backup/2|a|200", "/with_backup/3|a|200",
        "/refused_with_backup/1|R, b|502, 200", "/refused_with_backup/2|b|200",
    ]


LEAST_CONN = """
upstream u { least_conn; server 127.0.0.1:{a}; server 127.0.0.1:{b}; }
server {
    listen {listen};
    access_log {log} up;
    location / { proxy_pass http://u; %s }
}
""" % HOWTO


async def open_tunnel(port: int) -> tuple[str, asyncio.StreamWriter]:
    """A WebSocket through the proxy; the peer's name, sent right after its 101."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request("/ws"))
    head = await read_until(reader, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return (await asyncio.wait_for(reader.readexactly(1), WAIT)).decode(), writer


@pytest_twisted.ensureDeferred
async def test_least_conn_sends_the_next_away_from_two_open_tunnels(twins, peers) -> None:
    peers.add("a")
    peers.add("b")
    sides = twins.start(peers.conf(LEAST_CONN))
    placed, after = {}, {}
    for side in sides:
        tunnels = [await aio(open_tunnel(side.port)) for _ in range(3)]
        placed[side.name] = "".join(name for name, _ in tunnels)
        after[side.name] = b"".join(await run(side, ["/p1", "/p2", "/p3"])).decode()
        for _, writer in tunnels:
            writer.close()
        await side.log.wait_for(6)
    assert placed["wstunnel"] == placed["nginx"]
    crowded = max("ab", key=placed["nginx"].count)
    assert placed["nginx"].count(crowded) == 2
    other = "b" if crowded == "a" else "a"
    # Round robin would alternate; least_conn keeps choosing the peer with one tunnel.
    assert after["wstunnel"] == after["nginx"] == other * 3
