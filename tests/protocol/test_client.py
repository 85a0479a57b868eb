"""
The client and upstream protocols driven deterministically: the client
connection is a StringTransport, the reactor a MemoryReactorClock that
records where wstunnel dials, and every timer runs on its clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.error import ConnectionRefusedError, TimeoutError as ConnectTimeout
from twisted.python.failure import Failure

from support import MemoryProxy, load_text, switch_answer, upgrade_request
from wstunnel.net.intake import EARLY_DATA_LIMIT

CONF = """
map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
upstream backend {{ server 127.0.0.1:9001; server 127.0.0.1:9002; }}
server {{
    listen 127.0.0.1:8080;
    location /chat/ {{
        proxy_pass http://backend;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_connect_timeout 3s;
        proxy_read_timeout 20s;
        {extra}
    }}
}}
"""


def connected(tmp_path: Path, extra: str = "") -> MemoryProxy:
    """The config with ``extra`` in its location, and one client connection to it."""
    proxy = MemoryProxy(load_text(tmp_path / "t.conf", CONF.format(extra=extra)))
    proxy.connect_client()
    return proxy


def test_upgrade_dials_the_upstream_and_pauses_the_client(tmp_path) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/room"))
    assert h.dialled() == [("127.0.0.1", 9001)]
    assert h.reactor.tcpClients[0][3] == 3.0, "proxy_connect_timeout is the connect timeout"
    assert h.ct.producerState == "paused", "nothing is read until there is somewhere to send it"


def test_the_upstream_head_is_rewritten(tmp_path) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/room", extra="Keep-Alive: 5\r\nTE: trailers\r\n"))
    _, ut = h.upstream()
    head = ut.value().decode()
    assert head.startswith("GET /chat/room HTTP/1.1\r\nHost: backend\r\n")
    assert "\r\nUpgrade: websocket\r\n" in head
    assert "\r\nConnection: upgrade\r\n" in head
    assert "Keep-Alive" not in head and "TE:" not in head
    assert "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in head


def test_a_valid_101_wires_the_tunnel(tmp_path) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/") + b"early")
    upstream, ut = h.upstream()
    head = ut.value().split(b"\r\n\r\n")[0]
    ut.clear()
    upstream.dataReceived(switch_answer(head, b"first"))
    out = h.ct.value()
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert out.endswith(b"\r\n\r\nfirst")
    assert b"\r\nConnection: upgrade\r\n" in out
    assert ut.value() == b"early"
    assert h.ct.producer is not None and ut.producer is not None
    assert h.ct.producerState == "producing"
    h.client.dataReceived(b"tunnel bytes")
    assert ut.value() == b"earlytunnel bytes"


def test_connect_refused_tries_the_next_peer_then_answers_502(tmp_path) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/"))
    h.refuse(ConnectionRefusedError())
    assert h.dialled() == [("127.0.0.1", 9001), ("127.0.0.1", 9002)]
    h.refuse(ConnectionRefusedError())
    assert h.ct.value().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")


def test_connect_timeout_is_a_504(tmp_path) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/"))
    h.refuse(ConnectTimeout())
    h.refuse(ConnectTimeout())
    assert h.ct.value().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")


def test_response_header_timeout_is_a_504_after_trying_each_peer(tmp_path) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/"))
    h.upstream()
    h.reactor.advance(19.9)
    assert h.ct.value() == b""
    h.reactor.advance(0.1)
    h.upstream()  # the second peer
    h.reactor.advance(20)
    assert h.ct.value().startswith(b"HTTP/1.1 504 ")


def test_client_closing_while_waiting_aborts_the_upstream(tmp_path) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/"))
    _, ut = h.upstream()
    h.client.connectionLost(Failure(ConnectionRefusedError()))
    assert ut.disconnected


def test_early_data_is_bounded_while_waiting(tmp_path) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/"))
    h.upstream()
    assert h.ct.producerState == "producing"
    h.client.dataReceived(b"x" * EARLY_DATA_LIMIT)
    assert h.ct.producerState == "producing"
    h.client.dataReceived(b"x")
    assert h.ct.producerState == "paused"


def test_a_101_without_the_matching_accept_is_a_502(tmp_path) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/"))
    upstream, ut = h.upstream()
    upstream.dataReceived(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        b"Sec-WebSocket-Accept: bm9wZQ==\r\n\r\n"
    )
    assert h.ct.value().startswith(b"HTTP/1.1 502 ")
    assert h.ct.disconnecting and ut.disconnected


@pytest.mark.parametrize("status", [b"200 OK", b"426 Upgrade Required"])
def test_a_non_101_answer_to_an_upgrade_is_relayed_then_the_connection_closes(tmp_path, status) -> None:
    h = connected(tmp_path)
    h.client.dataReceived(upgrade_request("/chat/"))
    upstream, ut = h.upstream()
    upstream.dataReceived(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nno")
    out = h.ct.value()
    assert out.startswith(b"HTTP/1.1 " + status)
    assert out.endswith(b"\r\n\r\nno")
    assert b"\r\nConnection: close\r\n" in out
    assert h.ct.disconnecting


def test_tunnel_end_is_logged_with_status_101(tmp_path) -> None:
    log = tmp_path / "access.log"
    h = connected(tmp_path, extra=f"access_log {log};")
    h.client.dataReceived(upgrade_request("/chat/"))
    upstream, ut = h.upstream()
    upstream.dataReceived(switch_answer(ut.value().split(b"\r\n\r\n")[0], b"12345"))
    assert not log.exists() or log.read_text() == ""
    h.client.readConnectionLost()
    upstream.readConnectionLost()
    upstream.connectionLost(Failure(ConnectionRefusedError()))
    h.client.connectionLost(Failure(ConnectionRefusedError()))
    line = log.read_text()
    assert '"GET /chat/ HTTP/1.1" 101 5 ' in line


def test_proxy_http_version_1_0_writes_an_http_1_0_head(tmp_path) -> None:
    h = connected(tmp_path, extra="proxy_http_version 1.0;")
    h.client.dataReceived(b"GET /chat/x HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream, ut = h.upstream()
    assert ut.value().startswith(b"GET /chat/x HTTP/1.0\r\nHost: backend\r\n")
    upstream.dataReceived(b"HTTP/1.0 200 OK\r\n\r\nbody until close")
    upstream.readConnectionLost()
    out = h.ct.value()
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith(b"10\r\nbody until close\r\n0\r\n\r\n")


def test_an_upgrade_over_http_1_0_is_not_attempted(tmp_path) -> None:
    h = connected(tmp_path, extra="proxy_http_version 1.0;")
    h.client.dataReceived(upgrade_request("/chat/"))
    _, ut = h.upstream()
    head = ut.value().lower()
    assert head.startswith(b"get /chat/ http/1.0\r\n")
    assert b"\r\nupgrade:" not in head


@pytest.mark.parametrize(
    "status, phrase",
    [(413, "Content Too Large"), (414, "URI Too Long"), (431, "Request Header Fields Too Large"),
     (502, "Bad Gateway"), (504, "Gateway Timeout"), (499, "Client Closed Request")],
)
def test_reason_phrases_are_rfc_9110_whatever_the_python_version(status, phrase) -> None:
    from wstunnel.wire.errors import error_page, reason_phrase

    assert reason_phrase(status) == phrase
    assert f"<title>{status} {phrase}</title>".encode() in error_page(status)
