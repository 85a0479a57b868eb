"""net.authrequest on the memory harness: the subrequest dialled first, the request held until the verdict."""

from __future__ import annotations

from pathlib import Path

from support import MemoryProxy, load_text

CONF = """
server {
    listen 127.0.0.1:8080;
    location / { auth_request /auth; proxy_pass http://127.0.0.1:9001; proxy_read_timeout 7s; }
    location = /auth { proxy_pass http://127.0.0.1:9002; proxy_read_timeout 3s; }
}
"""
GET = b"GET /app HTTP/1.1\r\nHost: a\r\n\r\n"


def proxy(tmp_path: Path) -> MemoryProxy:
    return MemoryProxy(load_text(tmp_path / "t.conf", CONF))


def test_the_request_goes_upstream_after_a_2xx(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    p.connect_client(GET)
    assert p.ports() == [9002]
    p.answer(b"204 No Content")
    assert p.ports() == [9002, 9001]
    p.answer(b"200 OK", b"app")
    assert p.ct.value().endswith(b"\r\n\r\napp")


def test_a_refused_auth_service_is_a_500(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    p.connect_client(GET)
    p.refuse()
    assert p.ports() == [9002]
    assert p.ct.value().startswith(b"HTTP/1.1 500 ")


def test_a_silent_auth_service_is_a_500_after_its_read_timeout(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    p.connect_client(GET)
    p.upstream()
    p.reactor.advance(2.9)
    assert p.ct.value() == b""
    p.reactor.advance(0.2)
    assert p.ct.value().startswith(b"HTTP/1.1 500 ") and p.ports() == [9002]


def test_a_client_gone_during_the_subrequest_drops_it(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    client, _ = p.connect_client(GET)
    _, auth = p.upstream()
    client.connectionLost(ConnectionResetError())
    assert auth.disconnecting
    assert p.ports() == [9002]
