"""
nginx as the oracle for ``error_page``, ``proxy_intercept_errors`` and
``recursive_error_pages`` (issue 14): one config served by nginx 1.22 and
by wstunnel, each with its own scripted backend, and a port nobody listens
on for the upstream failures; status, Location and body compared, and what
the backend was asked for.
"""

from __future__ import annotations

import re

import pytest_twisted

from nginx_support import Response, ask_both, request
from support import aio, unused_ports
from test_nginx_parity_tls import plain_then_close

CONF = """
server {
    listen {listen} default_server;
    server_name a.test;
    client_max_body_size 10;
    proxy_read_timeout 1s;
    error_page 404 /pages/404;
    error_page 413 =200 /pages/413?why=size;
    error_page 400 414 505 /pages/early;
    error_page 494 /pages/early;
    location /pages/ { return 200 "page $uri $arg_why"; }
    location /api/ { proxy_pass http://127.0.0.1:{backend}; }
    location /dead { proxy_pass http://127.0.0.1:{dead}; error_page 502 = @fallback; }
    location @fallback { proxy_pass http://127.0.0.1:{backend}; }
    location /down { proxy_pass http://127.0.0.1:{dead}; error_page 502 /pages/502; }
    location /down-proxied { proxy_pass http://127.0.0.1:{dead}; error_page 502 /api/sorry; }
    location /slow { proxy_pass http://127.0.0.1:{backend}; error_page 504 =503 /pages/504; }
    location /url { proxy_pass http://127.0.0.1:{dead}; error_page 502 https://status.test/down; }
    location /moved { proxy_pass http://127.0.0.1:{dead}; error_page 502 =301 https://status.test/moved; }
    location /own { return 404; error_page 404 = /pages/own; }
    location /intercept/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_intercept_errors on;
        error_page 404 500 /pages/intercepted;
    }
    location /passed/ { proxy_pass http://127.0.0.1:{backend}; error_page 404 /pages/passed; }
    location /loop { return 404; error_page 404 /loop; recursive_error_pages on; }
    location /norec { return 403; error_page 403 /norec-page; }
    location /norec-page { return 404; }
    location /rec { return 403; error_page 403 /rec-page; recursive_error_pages on; }
    location /rec-late { return 403; error_page 403 /rec-page; }
    location /rec-page { return 404; recursive_error_pages on; }
    location /ws {
        proxy_pass http://127.0.0.1:{dead};
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        error_page 502 =503 /pages/ws;
    }
    location /text { return 404 "text of my own"; }
    location /moved-here { return 301 /x; error_page 301 =200 /pages/moved; }
    location /dir/ { proxy_pass http://127.0.0.1:{backend}; error_page 301 /pages/dir; }
}
"""

UPGRADE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


def backend(b, head: bytes, rest: bytes) -> None:
    """``/slow`` never answers; a path naming 404 or 500 gets that code; anything else a 200."""
    method, path, _ = head.split(b"\r\n", 1)[0].split(b" ")
    if path.startswith(b"/slow"):
        return
    status = b"404 Not Found" if b"404" in path else b"500 Oops" if b"500" in path else b"200 OK"
    body = b"upstream %s %s" % (method, path)
    b.transport.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
    b.transport.loseConnection()


def seen(response: Response) -> tuple:
    """Status, Location and body; the standard pages' bodies differ in wording, so only custom ones are compared."""
    status = int(response.status.split()[1])
    body = response.body
    if body.startswith(b"<html>"):
        body = b"<standard page>"
    location = response.header(b"Location")
    if location is not None:
        location = re.sub(rb":\d+/", b":PORT/", location)
    return status, location, body


def backend_lines(side) -> list[bytes]:
    return [head.split(b"\r\n", 1)[0].replace(b"HTTP/1.0", b"HTTP/1.1") for head in side.backend.heads]


async def answers(twins, *requests: bytes) -> list[tuple]:
    dead, = unused_ports(1)
    sides = twins.start(CONF.replace("{dead}", str(dead)), backend)
    seen_by = {side.name: [] for side in sides}
    for raw in requests:
        both = await ask_both(sides, raw)
        for name, response in both.items():
            seen_by[name].append(seen(response))
        assert seen_by["wstunnel"][-1] == seen_by["nginx"][-1], raw
    lines = {side.name: backend_lines(side) for side in sides}
    assert lines["wstunnel"] == lines["nginx"]
    return seen_by["nginx"]


@pytest_twisted.ensureDeferred
async def test_own_errors_go_to_their_pages_as_in_nginx(twins) -> None:
    got = await answers(
        twins,
        request("/nowhere", host="a.test"),
        request("/api/x", host="a.test", method="POST", extra="Content-Length: 100\r\n"),
        request("/down", host="a.test"),
        request("/down", host="a.test", method="HEAD"),
        request("/own", host="a.test"),
        request("/text", host="a.test"),
        request("/moved-here", host="a.test"),
        request("/dir", host="a.test"),
    )
    assert got == [
        (404, None, b"page /pages/404 "),
        (200, None, b"page /pages/413 size"),
        (502, None, b"page /pages/502 "),
        (502, None, b""),
        (200, None, b"page /pages/own "),
        (404, None, b"text of my own"),
        (200, b"http://a.test:PORT/x", b"page /pages/moved "),
        (301, b"http://a.test:PORT/dir/", b"page /pages/dir "),
    ]


@pytest_twisted.ensureDeferred
async def test_upstream_failures_go_to_named_locations_urls_and_proxied_pages(twins) -> None:
    got = await answers(
        twins,
        request("/dead/x?a=1", host="a.test", method="DELETE"),
        request("/down-proxied", host="a.test", method="POST", extra="Content-Length: 0\r\n"),
        request("/url", host="a.test"),
        request("/moved", host="a.test"),
        request("/slow", host="a.test"),
        request("/ws", host="a.test", extra=UPGRADE),
    )
    assert got == [
        (200, None, b"upstream DELETE /dead/x?a=1"),
        (502, None, b"upstream GET /api/sorry"),
        (302, b"https://status.test/down", b"<standard page>"),
        (301, b"https://status.test/moved", b"<standard page>"),
        (503, None, b"page /pages/504 "),
        (503, None, b"page /pages/ws "),
    ]


@pytest_twisted.ensureDeferred
async def test_intercepted_upstream_answers_and_recursion_as_in_nginx(twins) -> None:
    got = await answers(
        twins,
        request("/intercept/404", host="a.test"),
        request("/intercept/500", host="a.test"),
        request("/intercept/fine", host="a.test"),
        request("/passed/404", host="a.test"),
        request("/norec", host="a.test"),
        request("/rec", host="a.test"),
        request("/rec-late", host="a.test"),
        request("/loop", host="a.test"),
    )
    assert got == [
        (404, None, b"page /pages/intercepted "),
        (500, None, b"page /pages/intercepted "),
        (200, None, b"upstream GET /intercept/fine"),
        (404, None, b"upstream GET /passed/404"),
        (404, None, b"<standard page>"),
        (404, None, b"page /pages/404 "),
        (404, None, b"<standard page>"),
        (500, None, b"<standard page>"),
    ]


@pytest_twisted.ensureDeferred
async def test_requests_refused_before_routing_get_the_default_servers_pages_as_in_nginx(twins) -> None:
    got = await answers(
        twins,
        b"GARBAGE\r\n\r\n",
        b"GET /x HTTP/1.1\r\n\r\n",
        request("/x", host="a/b"),
        request("/x", host="a.test", extra="Bad Header: 1\r\n"),
        request("/" + "a" * 9000, host="a.test"),
        request("/x", host="a.test", extra="X-Big: %s\r\n" % ("b" * 9000)),
        b"GET /x HTTP/2.0\r\nHost: a.test\r\n\r\n",
    )
    assert got == [
        (400, None, b"page /pages/early "),
        (400, None, b"page /pages/early "),
        (400, None, b"page /pages/early "),
        (400, None, b"page /pages/early "),
        (414, None, b"page /pages/early "),
        (400, None, b"page /pages/early "),
        (505, None, b"page /pages/early "),
    ]


TLS = """
server {
    listen {listen} ssl;
    server_name a.test;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    error_page 497 =307 https://$host:$server_port$request_uri;
    location / { proxy_pass http://127.0.0.1:{backend}; }
}
server {
    listen {listen} ssl default_server;
    server_name b.test;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    error_page 497 /pages/plain;
    location /pages/ { return 200 "page $uri $host"; }
    location / { proxy_pass http://127.0.0.1:{backend}; }
}
"""


@pytest_twisted.ensureDeferred
async def test_plain_http_on_the_tls_port_is_nginxs_497_for_error_page(twins, ca) -> None:
    cert, key = ca.issue("site", ["a.test", "b.test"])
    sides = twins.start(TLS.replace("{cert}", cert).replace("{key}", key))
    got = {}
    for side in sides:
        redirected = await aio(plain_then_close(side.port, request("/chat/?x=1", "a.test")))
        page = await aio(plain_then_close(side.port, request("/chat/", "b.test")))
        location = redirected.header(b"Location").replace(b":%d/" % side.port, b":PORT/")
        got[side.name] = [(redirected.status, location), (page.status, page.body)]
    assert got["wstunnel"] == got["nginx"] == [
        (b"HTTP/1.1 307 Temporary Redirect", b"https://a.test:PORT/chat/?x=1"),
        (b"HTTP/1.1 400 Bad Request", b"page /pages/plain b.test"),
    ]
    assert all(not side.backend.heads for side in sides)
