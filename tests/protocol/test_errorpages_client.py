"""
Error pages through the real client protocol (net/proxying.py's hooks),
driven step by step: a failed upstream handed to a named location's
backend, an intercepted answer whose upstream connection is closed rather
than pooled, a request body that never reaches the page, a refused upgrade.
"""

from __future__ import annotations

from pathlib import Path

from support import MemoryProxy, load_text, upgrade_request

CONF = """
upstream kept { server 127.0.0.1:9002; keepalive 4; }
server {
    listen 127.0.0.1:8080;
    location /app { proxy_pass http://127.0.0.1:9001; error_page 502 504 = @backup; }
    location @backup { proxy_pass http://127.0.0.1:9003; }
    location /kept {
        proxy_pass http://kept;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_intercept_errors on;
        error_page 404 =410 /gone;
    }
    location /gone { return 200 "gone page"; }
    location /ws { proxy_pass http://127.0.0.1:9001; error_page 502 =503 /gone; }
}
"""


def proxy(tmp_path: Path) -> MemoryProxy:
    return MemoryProxy(load_text(tmp_path / "t.conf", CONF))


def test_a_failed_upstream_goes_to_the_named_locations_backend(tmp_path) -> None:
    p = proxy(tmp_path)
    _, client = p.connect_client(b"DELETE /app/x HTTP/1.1\r\nHost: a\r\n\r\n")
    p.refuse()
    assert p.ports() == [9001, 9003]
    upstream, sent = p.upstream()
    assert sent.value().startswith(b"DELETE /app/x HTTP/1.1\r\n")
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nbackup")
    assert client.value().startswith(b"HTTP/1.1 200 OK\r\n")
    assert client.value().endswith(b"\r\n\r\nbackup")
    assert not client.disconnecting


def test_a_timed_out_upstream_goes_to_the_named_location_too(tmp_path) -> None:
    p = proxy(tmp_path)
    _, client = p.connect_client(b"GET /app HTTP/1.1\r\nHost: a\r\n\r\n")
    p.upstream()
    p.reactor.advance(61)
    assert p.ports() == [9001, 9003]
    p.answer(b"503 Busy", b"later")
    assert client.value().startswith(b"HTTP/1.1 503 ")


def test_an_intercepted_answer_is_not_relayed_and_its_connection_is_closed_not_pooled(tmp_path) -> None:
    p = proxy(tmp_path)
    _, client = p.connect_client(b"GET /kept/x HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream, sent = p.upstream()
    upstream.dataReceived(b"HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\n\r\nupstream's 404")
    assert sent.disconnecting
    assert client.value().startswith(b"HTTP/1.1 410 Gone\r\n")
    assert client.value().endswith(b"\r\n\r\ngone page")
    assert b"upstream's" not in client.value()
    assert len(p.runtime.pools["kept"]) == 0


def test_a_page_never_gets_the_request_body_and_the_connection_closes_when_it_is_unread(tmp_path) -> None:
    p = proxy(tmp_path)
    _, client = p.connect_client(b"POST /app HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhalf.")
    p.refuse()
    upstream, sent = p.upstream()
    head = sent.value()
    assert head.startswith(b"POST /app HTTP/1.1\r\n") and head.endswith(b"\r\n\r\n")
    assert b"content-length" not in head.lower() and b"half." not in head
    p.client.dataReceived(b"rest!")
    assert sent.value() == head
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert client.value().endswith(b"\r\n\r\nok")
    assert client.disconnecting


def test_a_refused_upgrade_gets_its_page_and_the_connection_closes(tmp_path) -> None:
    p = proxy(tmp_path)
    _, client = p.connect_client(upgrade_request("/ws", host="a"))
    p.refuse()
    assert client.value().startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert client.value().endswith(b"\r\n\r\ngone page")
    assert client.disconnecting


def test_a_page_whose_own_uri_is_refused_ends_in_the_redirect_limit_not_a_loop(tmp_path) -> None:
    text = """
    server {
        listen 127.0.0.1:8080;
        recursive_error_pages on;
        error_page 400 /bad%zz;
        location / { return 200; }
    }
    """
    p = MemoryProxy(load_text(tmp_path / "t.conf", text))
    _, client = p.connect_client(b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n")
    assert client.value().startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert client.disconnecting
