"""
limit_conn and limit_req through the real client protocol, on a
MemoryReactorClock: refusals, a delay held on the clock without blocking
other clients, counts held by a tunnel until it ends, and given back when
a client leaves.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from support import LISTEN, HalfCloseTransport, MemoryProxy, load_text, log_fields, switch_answer, upgrade_request

CONF = """
limit_conn_zone $binary_remote_addr zone=addr:32k;
limit_req_zone $binary_remote_addr zone=req:32k rate={rate};
server {{
    listen 127.0.0.1:8080;
    location / {{
        proxy_pass http://127.0.0.1:9000;
        {extra}
    }}
}}
"""

GET = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"


def proxy(tmp_path: Path, extra: str, rate: str = "1r/m") -> MemoryProxy:
    return MemoryProxy(load_text(tmp_path / "t.conf", CONF.format(extra=extra, rate=rate)))


def client_from(p: MemoryProxy, host: str, data: bytes = b"") -> HalfCloseTransport:
    """A client connection from ``host`` (MemoryProxy's own always comes from 127.0.0.1)."""
    client = p.factory.buildProtocol(None)
    transport = HalfCloseTransport(hostAddress=IPv4Address("TCP", *LISTEN), peerAddress=IPv4Address("TCP", host, 40000))
    client.makeConnection(transport)
    transport.protocol = client
    if data:
        client.dataReceived(data)
    return transport


def status(transport: HalfCloseTransport) -> bytes:
    """The status line's code, or b"" when nothing was answered."""
    return transport.value().split(b"\r\n", 1)[0][9:12]


def test_limit_conn_counts_open_tunnels_per_address(tmp_path: Path) -> None:
    p = proxy(tmp_path, "limit_conn addr 2;")
    tunnels = []
    for _ in range(2):
        transport = client_from(p, "127.0.0.2", upgrade_request())
        upstream, _ = p.upstream()
        upstream.dataReceived(switch_answer(upgrade_request()))
        assert status(transport) == b"101"
        tunnels.append((transport, upstream))
    refused = client_from(p, "127.0.0.2", upgrade_request())
    assert status(refused) == b"503"
    assert len(p.dialled()) == 2, "a refused upgrade never reaches the upstream"
    other = client_from(p, "127.0.0.5", upgrade_request())
    assert len(p.dialled()) == 3 and other.value() == b""
    tunnels[0][0].protocol.connectionLost(Failure(ConnectionDone()))
    tunnels[0][1].connectionLost(Failure(ConnectionDone()))
    again = client_from(p, "127.0.0.2", upgrade_request())
    assert again.value() == b"" and len(p.dialled()) == 4, "a closed tunnel gives its count back"


def test_limit_conn_counts_requests_until_their_answer_ends(tmp_path: Path) -> None:
    p = proxy(tmp_path, "limit_conn addr 1; limit_conn_status 429;")
    first = client_from(p, "127.0.0.2", GET)
    second = client_from(p, "127.0.0.2", GET)
    assert status(second) == b"429"
    p.answer(b"200 OK", b"ok")
    assert status(first) == b"200"
    third = client_from(p, "127.0.0.2", GET)
    assert third.value() == b"" and len(p.dialled()) == 2


def test_limit_req_burst_nodelay_then_refused(tmp_path: Path) -> None:
    p = proxy(tmp_path, "limit_req zone=req burst=2 nodelay;")
    answers = []
    for _ in range(4):
        transport = client_from(p, "127.0.0.2", GET)
        if transport.value() == b"":
            p.answer(b"200 OK", b"ok")
        answers.append(status(transport))
    assert answers == [b"200"] * 3 + [b"503"]
    assert status(client_from(p, "127.0.0.5", GET)) == b"", "another address has its own bucket"


def test_limit_req_delay_holds_on_the_clock(tmp_path: Path) -> None:
    p = proxy(tmp_path, "limit_req zone=req burst=5;", rate="2r/s")
    client_from(p, "127.0.0.2", GET)
    p.answer(b"200 OK", b"ok")
    held = client_from(p, "127.0.0.2", GET)
    assert held.value() == b"" and len(p.dialled()) == 1, "the second request waits (500 ms at 2r/s)"
    other = client_from(p, "127.0.0.5", GET)
    assert len(p.dialled()) == 2, "nothing else waits for it"
    p.answer(b"200 OK", b"ok")
    assert status(other) == b"200"
    p.reactor.advance(0.499)
    assert len(p.dialled()) == 2
    p.reactor.advance(0.002)
    assert len(p.dialled()) == 3
    p.answer(b"200 OK", b"ok")
    assert status(held) == b"200"


def test_a_client_that_leaves_while_delayed_is_never_forwarded(tmp_path: Path) -> None:
    p = proxy(tmp_path, "limit_req zone=req burst=5; limit_conn addr 1;", rate="1r/s")
    client_from(p, "127.0.0.2", GET)
    p.answer(b"200 OK", b"ok")
    held = client_from(p, "127.0.0.2", GET)
    held.protocol.connectionLost(Failure(ConnectionDone()))
    p.reactor.advance(5)
    assert len(p.dialled()) == 1
    assert not p.reactor.getDelayedCalls() or all(c.getTime() > 5 for c in p.reactor.getDelayedCalls())


FULL = """
limit_conn_zone $http_x_key zone=keys:32k;
log_format limits '$status|$limit_conn_status|$limit_req_status';
server {{
    listen 127.0.0.1:8080;
    access_log {log} limits;
    location / {{
        proxy_pass http://127.0.0.1:9000;
        {extra}
    }}
}}
"""


def logged(events: list[dict]) -> list[str]:
    return [e["text"] for e in events if "text" in e and "client" in e]


def with_events(test):  # type: ignore[no-untyped-def]
    def run(tmp_path: Path) -> None:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        try:
            test(tmp_path, events)
        finally:
            globalLogPublisher.removeObserver(events.append)
    run.__name__ = test.__name__
    return run


@with_events
def test_a_full_conn_zone_answers_the_status_and_logs_then_frees(tmp_path: Path, events: list[dict]) -> None:
    log = tmp_path / "access.log"
    p = MemoryProxy(load_text(tmp_path / "t.conf", FULL.format(log=log, extra="limit_conn keys 1;")))
    held, refused = 0, None
    for n in range(600):  # a 32k zone has 512 states
        transport = client_from(p, "127.0.0.2", b"GET / HTTP/1.1\r\nHost: a\r\nX-Key: %d\r\n\r\n" % n)
        if transport.value():
            refused = n
            break
        held += 1
    assert refused is not None and status(transport) == b"503" and held <= 512
    assert logged(events)[-1] == 'ngx_slab_alloc() failed: no memory in limit_conn_zone "keys"'
    assert log_fields(log)[-1] == ["503", "REJECTED", "-"]
    for index in range(held):
        p.answer(b"200 OK", b"ok", index=index)
    again = client_from(p, "127.0.0.2", b"GET / HTTP/1.1\r\nHost: a\r\nX-Key: %d\r\n\r\n" % refused)
    assert again.value() == b"", "every count given back"


@with_events
def test_dry_run_only_logs(tmp_path: Path, events: list[dict]) -> None:
    log = tmp_path / "access.log"
    p = MemoryProxy(load_text(tmp_path / "t.conf", FULL.format(log=log, extra="limit_conn keys 1; limit_conn_dry_run on;")))
    for _ in range(2):
        client_from(p, "127.0.0.2", b"GET / HTTP/1.1\r\nHost: a\r\nX-Key: k\r\n\r\n")
    assert len(p.dialled()) == 2
    assert logged(events) == ['limiting connections, dry run, by zone "keys"']
    p.answer(b"200 OK", b"ok", index=1)
    p.answer(b"200 OK", b"ok", index=0)
    assert sorted(log_fields(log)) == [["200", "PASSED", "-"], ["200", "REJECTED_DRY_RUN", "-"]]


@with_events
def test_an_empty_key_is_not_limited(tmp_path: Path, events: list[dict]) -> None:
    log = tmp_path / "access.log"
    p = MemoryProxy(load_text(tmp_path / "t.conf", FULL.format(log=log, extra="limit_conn keys 1;")))
    for _ in range(3):
        client_from(p, "127.0.0.2", GET)
    assert len(p.dialled()) == 3 and not logged(events)
