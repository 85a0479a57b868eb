"""
nginx as the oracle for ``$sent_http_NAME`` and ``$upstream_cache_status``
(issue 13): read by ``add_header`` (the upstream's headers, and what
``expires`` set) and by ``log_format`` (the headers the client got).
"""

from __future__ import annotations

import pytest_twisted

from nginx_support import ask_both, request, scripted_answer

CONF = """
log_format sent '$sent_http_x_up|$sent_http_x_added|$sent_http_cache_control|$sent_http_x_missing|$upstream_cache_status';
server {
    listen {listen};
    access_log {log} sent;
    location / {
        proxy_pass http://127.0.0.1:{backend};
        expires 1h;
        add_header X-Added "up=$sent_http_x_up cc=$sent_http_cache_control";
        add_header X-Cache-Status "[$upstream_cache_status]";
    }
}
"""

ANSWER = b"HTTP/1.1 200 OK\r\nX-Up: one\r\nX-Up: two\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest_twisted.ensureDeferred
async def test_sent_headers_as_nginx_reads_them(twins) -> None:
    sides = twins.start(CONF, scripted_answer(ANSWER))
    got = await ask_both(list(reversed(sides)), request("/a", extra="Connection: close\r\n"))
    for name in (b"X-Added", b"X-Cache-Status"):
        assert got["wstunnel"].header(name) == got["nginx"].header(name), name
    lines = {side.name: await side.log.wait_for(1) for side in sides}
    assert lines["wstunnel"] == lines["nginx"]
