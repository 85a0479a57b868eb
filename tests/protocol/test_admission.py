"""
Admission at ``worker_connections`` (net.registry): idle connections are
closed to admit new clients, the longest idle first, as nginx reuses
connections; tunnels and requests in flight (a head begun counts) are never
touched, and a client is refused only when nothing is idle.  Driven on
memory transports: the test plays clients and upstream.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure

from support import MemoryProxy, load_text, switch_answer, upgrade_request
from wstunnel.obs.metrics import prometheus_text

CONF = """
events { worker_connections %d; }
server {
    listen 127.0.0.1:8080;
    location / { proxy_pass http://127.0.0.1:9001; }
}
"""
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def proxy(tmp_path: Path, limit: int = 3) -> MemoryProxy:
    return MemoryProxy(load_text(tmp_path / "t.conf", CONF % limit))


def answered(p: MemoryProxy, client, transport: StringTransport) -> None:
    """``client`` sends a GET, the upstream answers, and the connection stays open, idle."""
    client.dataReceived(GET)
    p.answer(b"200 OK", b"ok")
    assert transport.value().startswith(b"HTTP/1.1 200 ") and not transport.disconnecting


def closed(*transports: StringTransport) -> list[bool]:
    return [t.disconnecting for t in transports]


def test_the_longest_idle_keepalive_connection_is_closed_for_a_new_client(tmp_path) -> None:
    p = proxy(tmp_path)
    first, first_t = p.connect_client()
    second, second_t = p.connect_client()
    answered(p, second, second_t)  # idle since now
    answered(p, first, first_t)  # idle since later: an older connection, idle for less long
    in_flight, in_flight_t = p.connect_client(GET)
    new, new_t = p.connect_client()
    assert closed(first_t, second_t, in_flight_t, new_t) == [False, True, False, False]
    assert new.serial == 4
    newer, newer_t = p.connect_client()
    assert closed(first_t, in_flight_t, new_t, newer_t) == [True, False, False, False]
    assert newer.serial == 5
    # The reclaimed connections were closed as a drain closes them: nothing written, no abort.
    assert second_t.value().count(b"HTTP/1.1 ") == 1 and not second_t.disconnected


def test_a_connection_that_never_sent_a_byte_is_reclaimable(tmp_path) -> None:
    p = proxy(tmp_path)
    silent = [p.connect_client()[1] for _ in range(3)]
    client, transport = p.connect_client(GET)
    assert closed(*silent, transport) == [True, False, False, False]
    assert client.serial == 4 and len(p.dialled()) == 1


def test_a_head_begun_is_a_request_in_flight(tmp_path) -> None:
    """nginx stops treating a connection as reusable at the first byte of a request."""
    p = proxy(tmp_path)
    begun = [p.connect_client(b"GET / HT")[1] for _ in range(3)]
    refused, refused_t = p.connect_client()
    assert refused.serial == 0 and refused_t.disconnected
    assert closed(*begun) == [False, False, False]


def test_a_keepalive_connection_with_the_next_head_begun_is_kept(tmp_path) -> None:
    p = proxy(tmp_path)
    clients = [p.connect_client() for _ in range(3)]
    for client, transport in clients:
        answered(p, client, transport)
        client.dataReceived(b"G")
    refused, _ = p.connect_client()
    assert refused.serial == 0
    assert closed(*(t for _, t in clients)) == [False, False, False]


def test_tunnels_and_requests_in_flight_are_never_closed_and_then_a_client_is_refused(tmp_path) -> None:
    p = proxy(tmp_path)
    tunnel, tunnel_t = p.connect_client(upgrade_request())
    upstream, _ = p.upstream()
    upstream.dataReceived(switch_answer(upgrade_request()))
    assert tunnel_t.value().startswith(b"HTTP/1.1 101 ")
    waiting, waiting_t = p.connect_client(GET)  # its upstream still connecting: 2 + 1 in use
    with capturedLogs() as events:
        refused, refused_t = p.connect_client()
    assert refused.serial == 0 and refused_t.disconnected
    assert closed(tunnel_t, waiting_t) == [False, False]
    assert [e["log_format"] for e in events] == ["{limit} worker_connections are not enough, closing new connections"]
    counters = p.factory.registry.stats.counters
    assert counters["wstunnel_connections_accepted_total"] == 3
    assert counters["wstunnel_connections_handled_total"] == 2
    assert "wstunnel_connections_reclaimed_total" not in counters


def test_an_answer_the_client_has_not_read_keeps_its_connection_until_it_has(tmp_path) -> None:
    """nginx keeps a connection in flight until its answer is sent; then it waits, reusable."""
    p = proxy(tmp_path)
    reader, reader_t = p.connect_client(GET)
    upstream, _ = p.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
    reader_t.producer.pauseProducing()  # the client's write buffer is over its mark
    upstream.dataReceived(b"ok")
    begun = [p.connect_client(b"G")[1] for _ in range(2)]
    refused, _ = p.connect_client()
    assert refused.serial == 0 and not reader_t.disconnecting
    reader_t.producer.resumeProducing()  # read at last: waiting for its next request
    new, _ = p.connect_client()
    assert new.serial == 4 and closed(reader_t, *begun) == [True, False, False]


def test_reclaiming_is_a_warning_once_a_second_and_counted(tmp_path) -> None:
    p = proxy(tmp_path, limit=2)
    with capturedLogs() as events:
        for _ in range(4):
            p.connect_client()
        p.reactor.advance(1.0)
        p.connect_client()
    warnings = [e for e in events if e["log_level"] is LogLevel.warn]
    assert [e["log_format"] for e in warnings] == [
        "{limit} worker_connections are not enough, reusing connections"
    ] * 2
    assert warnings[0]["limit"] == 2
    stats = p.factory.registry.stats
    assert "\nwstunnel_connections_reclaimed_total 3\n" in prometheus_text(stats.snapshot()).decode()
    assert stats.counters["wstunnel_connections_handled_total"] == 5


def test_a_reclaimed_connection_leaves_quietly_and_the_count_stays_right(tmp_path) -> None:
    log = tmp_path / "access.log"
    conf = CONF.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:8080; access_log {log};")
    p = MemoryProxy(load_text(tmp_path / "t.conf", conf % 2))
    old, _ = p.connect_client()
    p.connect_client()
    p.connect_client()
    old.connectionLost(Failure(ConnectionDone()))  # the close completes
    registry = p.factory.registry
    assert old not in registry.clients and len(registry.clients) == 2
    assert not log.exists() or log.read_text() == ""
    p.connect_client()  # still at the limit: the next idle one goes
    assert len(registry.clients) == 2 and registry.stats.counters["wstunnel_connections_reclaimed_total"] == 2


def test_a_connection_closing_for_its_own_reasons_is_not_reclaimed(tmp_path) -> None:
    p = proxy(tmp_path, limit=2)
    timed_out, timed_out_t = p.connect_client()
    p.reactor.advance(60.0)  # client_header_timeout: closing, its descriptor not yet released
    assert timed_out_t.disconnecting
    _, idle_t = p.connect_client()
    new, _ = p.connect_client()
    assert new.serial == 3 and idle_t.disconnecting
    registry = p.factory.registry
    assert timed_out in registry.clients and registry.stats.counters["wstunnel_connections_reclaimed_total"] == 1
