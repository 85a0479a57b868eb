"""
Peer choice, retries and passive health through the real client protocol,
driven deterministically: StringTransports, a MemoryReactorClock that
records every dial, and the access log written with the $upstream_*
variables.

nginx oracles: the tries / $upstream_status lists mirror nginx-tests
proxy_next_upstream_tries.t ("404, 404" with tries 2, "404, 404, 404" with
0); the peer accounting mirrors proxy_next_upstream.t (a 404 does not
disable a peer, a 500 does; a down peer is skipped without "no live
upstreams"); the POST rules mirror proxy_non_idempotent.t.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.error import ConnectionRefusedError, TimeoutError as ConnectTimeout
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from support import MemoryProxy, load_text, log_fields, switch_answer, upgrade_request
from wstunnel.config.loader import load_config

CONF = """
log_format up '$upstream_addr|$upstream_status|$upstream_connect_time|$upstream_header_time|$upstream_response_time|$status|$request_time';
upstream backend {{
    {method}
    server 127.0.0.1:9001{p1};
    server 127.0.0.1:9002{p2};
    server 127.0.0.1:9003{p3};
}}
server {{
    listen 127.0.0.1:8080;
    access_log {log} up;
    location / {{
        proxy_pass http://backend;
        proxy_connect_timeout 3s;
        {extra}
    }}
}}
"""

GET = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
POST = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
POST_BODY = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"


class Proxy(MemoryProxy):
    """The config with its peer flags and ``extra``; the access log holds the $upstream_* lists."""

    def __init__(self, tmp_path: Path, *, method: str = "", p1: str = "", p2: str = "", p3: str = "",
                 extra: str = "") -> None:
        self.log = tmp_path / "access.log"
        text = CONF.format(method=method, p1=p1, p2=p2, p3=p3, extra=extra, log=self.log)
        super().__init__(load_text(tmp_path / "t.conf", text))

    def lines(self) -> list[list[str]]:
        return log_fields(self.log)

    def state(self, port: int):
        return next(s for s in self.runtime.balancer("backend").primary if s.peer.port == port)


def test_a_refused_peer_is_skipped_and_both_are_logged(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    _, client = proxy.connect_client(GET)
    proxy.reactor.advance(0.25)
    proxy.refuse()
    proxy.reactor.advance(0.5)
    proxy.answer(b"200 OK", b"ok")
    assert client.value().startswith(b"HTTP/1.1 200 OK\r\n")
    # The second attempt started at 0.25 and had its head at 0.75.
    assert proxy.lines() == [["127.0.0.1:9001, 127.0.0.1:9002", "502, 200", "-, 0.500", "-, 0.500",
                              "0.250, 0.500", "200", "0.750"]]


def test_an_upgrade_is_retried_like_a_get_and_logged_at_tunnel_end(tmp_path) -> None:
    proxy = Proxy(tmp_path, extra="proxy_read_timeout 100s;")
    _, client = proxy.connect_client(upgrade_request("/chat"))
    proxy.refuse()
    upstream, ut = proxy.upstream()
    proxy.reactor.advance(1.0)
    upstream.dataReceived(switch_answer(ut.value().split(b"\r\n\r\n")[0]))
    assert client.value().startswith(b"HTTP/1.1 101 ")
    assert proxy.state(9002).conns == 1, "the tunnel is an open connection"
    proxy.reactor.advance(99.0)
    assert proxy.state(9002).conns == 1 and not proxy.log.exists()
    proxy.reactor.advance(1.0)  # idle timeout: the tunnel closes both sides
    assert client.disconnecting and ut.disconnecting
    upstream.connectionLost(Failure(ConnectionRefusedError()))
    proxy.client.connectionLost(Failure(ConnectionRefusedError()))
    assert proxy.state(9002).conns == 0
    assert proxy.lines() == [
        ["127.0.0.1:9001, 127.0.0.1:9002", "502, 101", "-, 0.000", "-, 1.000", "0.000, 101.000", "101", "101.000"]
    ]


def test_a_timeout_is_504_only_when_every_try_is_spent(tmp_path) -> None:
    proxy = Proxy(tmp_path, extra="proxy_next_upstream_tries 2; proxy_read_timeout 20s;")
    _, client = proxy.connect_client(GET)
    proxy.upstream()
    proxy.reactor.advance(20.0)
    assert client.value() == b"" and proxy.ports() == [9001, 9002]
    proxy.upstream()
    proxy.reactor.advance(20.0)
    assert client.value().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert proxy.ports() == [9001, 9002]
    assert proxy.lines()[0][:2] == ["127.0.0.1:9001, 127.0.0.1:9002", "504, 504"]


@pytest.mark.parametrize("tries, statuses", [(2, "404, 404"), (0, "404, 404, 404")])
def test_http_404_tries(tmp_path, tries, statuses) -> None:
    """proxy_next_upstream_tries.t: the last 404 itself reaches the client."""
    proxy = Proxy(tmp_path, extra=f"proxy_next_upstream http_404; proxy_next_upstream_tries {tries};")
    _, client = proxy.connect_client(GET)
    for n in range(len(statuses.split(", "))):
        proxy.answer(b"404 Not Found", b"nf%d" % n)
    assert client.value().startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert client.value().endswith(b"nf%d" % (len(statuses.split(", ")) - 1))
    assert proxy.lines()[0][1] == statuses


def test_a_404_does_not_disable_a_peer_but_a_listed_500_does(tmp_path) -> None:
    """proxy_next_upstream.t."""
    proxy = Proxy(tmp_path, extra="proxy_next_upstream http_500 http_404;")
    proxy.connect_client(GET)
    proxy.answer(b"404 Not Found")
    proxy.answer(b"200 OK")
    assert proxy.state(9001).fails == 0
    proxy.connect_client(GET)  # round robin: 9003 first
    proxy.answer(b"500 Internal Server Error")
    proxy.answer(b"200 OK")
    assert proxy.ports()[2] == 9003 and proxy.ports()[3] != 9003
    assert proxy.state(9003).fails == 1
    for _ in range(4):
        proxy.connect_client(GET)
        proxy.answer(b"200 OK")
    assert 9003 not in proxy.ports()[4:]


def test_a_down_peer_is_skipped_without_no_live_upstreams(tmp_path) -> None:
    proxy = Proxy(tmp_path, p1=" down", p3=" down", extra="proxy_next_upstream http_404;")
    _, client = proxy.connect_client(GET)
    proxy.answer(b"404 Not Found", b"A")
    assert client.value().endswith(b"A") and proxy.ports() == [9002]


def test_a_sent_post_is_not_retried(tmp_path) -> None:
    """proxy_non_idempotent.t: the peer closes without answering."""
    proxy = Proxy(tmp_path)
    _, client = proxy.connect_client(POST)
    upstream, _ = proxy.upstream()
    upstream.readConnectionLost()
    assert client.value().startswith(b"HTTP/1.1 502 ")
    assert proxy.lines()[0][0] == "127.0.0.1:9001"


def test_a_get_closed_without_answer_is_retried(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    _, client = proxy.connect_client(GET)
    upstream, _ = proxy.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-")
    upstream.readConnectionLost()
    proxy.answer(b"200 OK")
    assert client.value().startswith(b"HTTP/1.1 200 OK\r\n")
    assert proxy.lines()[0][:2] == ["127.0.0.1:9001, 127.0.0.1:9002", "502, 200"]


def test_non_idempotent_allows_a_post_retry(tmp_path) -> None:
    proxy = Proxy(tmp_path, extra="proxy_next_upstream error timeout non_idempotent;")
    _, client = proxy.connect_client(POST)
    proxy.upstream()[0].readConnectionLost()
    proxy.answer(b"200 OK")
    assert client.value().startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_refused_post_goes_to_the_next_peer_with_its_body(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    proxy.connect_client(POST_BODY)
    proxy.refuse()
    _, ut = proxy.upstream()
    assert ut.value().endswith(b"\r\n\r\nbody"), "nothing was sent yet: the body goes to the next peer"


def test_a_post_body_that_started_flowing_is_never_sent_twice(tmp_path) -> None:
    proxy = Proxy(tmp_path, extra="proxy_next_upstream error timeout non_idempotent;")
    _, client = proxy.connect_client(POST_BODY)
    proxy.upstream()[0].readConnectionLost()
    assert client.value().startswith(b"HTTP/1.1 502 ") and proxy.ports() == [9001]


def test_next_upstream_off_and_timeout(tmp_path) -> None:
    proxy = Proxy(tmp_path, extra="proxy_next_upstream off;")
    _, client = proxy.connect_client(GET)
    proxy.refuse()
    assert client.value().startswith(b"HTTP/1.1 502 ") and proxy.ports() == [9001]
    timed = Proxy(tmp_path, extra="proxy_next_upstream_timeout 2s;")
    _, client = timed.connect_client(GET)
    timed.reactor.advance(1.9)
    timed.refuse(reason=ConnectTimeout())
    assert timed.ports() == [9001, 9002]
    timed.reactor.advance(0.1)
    timed.refuse(reason=ConnectTimeout())
    assert client.value().startswith(b"HTTP/1.1 504 ") and timed.ports() == [9001, 9002]


def test_no_live_upstreams(tmp_path) -> None:
    proxy = Proxy(tmp_path, p3=" down")
    for _ in range(2):
        proxy.connect_client(GET)
        proxy.refuse()
        proxy.refuse()
    with capturedLogs() as events:
        _, client = proxy.connect_client(GET)
    assert client.value().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert any("no live upstreams while connecting to upstream" in e["log_format"] for e in events)
    assert proxy.lines()[-1][:2] == ["backend", "502"]


def test_a_peer_failing_mid_retry_with_the_rest_failed_out_is_no_live_upstreams(tmp_path) -> None:
    """nginx: a retry that finds nothing usable ends in "no live upstreams" and 502."""
    proxy = Proxy(tmp_path, p3=" down")
    proxy.connect_client(GET)
    proxy.refuse()
    proxy.answer(b"200 OK")  # 9001 is out now
    _, client = proxy.connect_client(GET)
    assert proxy.ports()[-1] == 9002
    proxy.refuse(reason=ConnectTimeout())
    assert client.value().startswith(b"HTTP/1.1 502 ")
    assert proxy.lines()[-1][:2] == ["127.0.0.1:9002, backend", "504, 502"]


def test_invalid_header_is_retried_only_when_listed(tmp_path) -> None:
    for extra, expected in (("", b"HTTP/1.1 502 "), ("proxy_next_upstream error invalid_header;", b"HTTP/1.1 200 ")):
        path = tmp_path / str(len(extra))
        path.mkdir()
        proxy = Proxy(path, extra=extra)
        _, client = proxy.connect_client(GET)
        proxy.upstream()[0].dataReceived(b"garbage\r\n\r\n")
        if proxy.ports() == [9001, 9002]:
            proxy.answer(b"200 OK")
        assert client.value().startswith(expected)
        assert proxy.state(9001).fails == 1, "an invalid header always counts"


def test_max_conns_with_tunnels_overflows_to_the_next_peer(tmp_path) -> None:
    proxy = Proxy(tmp_path, method="least_conn;", p1=" max_conns=1", p2=" max_conns=1", p3=" down")
    for expected in ([9001], [9001, 9002]):
        proxy.connect_client(upgrade_request("/chat"))
        upstream, ut = proxy.upstream()
        upstream.dataReceived(switch_answer(ut.value().split(b"\r\n\r\n")[0]))
        assert proxy.ports() == expected
    _, client = proxy.connect_client(GET)
    assert client.value().startswith(b"HTTP/1.1 502 "), "both peers are full"


def test_unix_peers_are_dialled_with_connect_unix(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    text = (tmp_path / "t.conf").read_text().replace("server 127.0.0.1:9001;", "server unix:/run/app.sock;")
    (tmp_path / "t.conf").write_text(text)
    proxy.reload(load_config(str(tmp_path / "t.conf")))
    proxy.connect_client(GET)
    assert proxy.reactor.unixClients[0][0] == "/run/app.sock"
    assert proxy.reactor.unixClients[0][2] == 3.0
