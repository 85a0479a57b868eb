"""
nginx as the oracle for ``charset``, ``charset_types``, ``source_charset``
and ``override_charset`` (issue 13): the Content-Type each proxy sends for
an upstream Content-Type given in the request's X-Type header.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from nginx_support import ask_both, request
from support import ScriptedBackend

CONF = """
server {
    listen {listen};
    charset utf-8;
    location /plain/ { proxy_pass http://127.0.0.1:{backend}; }
    location /off/ { proxy_pass http://127.0.0.1:{backend}; charset off; }
    location /types/ {
        proxy_pass http://127.0.0.1:{backend};
        charset_types application/json;
        charset_types text/csv;
    }
    location /any/ { proxy_pass http://127.0.0.1:{backend}; charset_types *; }
    location /override/ {
        proxy_pass http://127.0.0.1:{backend};
        charset utf-8;
        override_charset on;
    }
    location /source/ {
        proxy_pass http://127.0.0.1:{backend};
        charset windows-1251;
        source_charset Windows-1251;
    }
    location /variable/ {
        proxy_pass http://127.0.0.1:{backend};
        charset $arg_cs;
        source_charset koi8-r;
    }
}
"""


def typed(backend: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """The request's X-Type as Content-Type; a 302 for a path with "moved"; then closes."""
    kind = next(line[7:].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"x-type:"))
    status = b"302 Found\r\nLocation: /x" if b"moved" in head.split(b"\r\n", 1)[0] else b"200 OK"
    backend.transport.write(
        b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    )
    backend.transport.loseConnection()


CASES = [
    ("/plain/a", "text/html", "text/html; charset=utf-8"),
    ("/plain/a", "TEXT/HTML", "TEXT/HTML; charset=utf-8"),
    ("/plain/a", "application/javascript", "application/javascript; charset=utf-8"),
    ("/plain/a", "application/json", "application/json"),
    ("/plain/a", "text/html; q=1", "text/html; q=1"),
    ("/plain/a", "text/html; charset=latin1", "text/html; charset=latin1"),
    ("/plain/moved", "text/html", "text/html"),
    ("/off/a", "text/html", "text/html"),
    ("/types/a", "application/json", "application/json; charset=utf-8"),
    ("/types/a", "text/csv", "text/csv; charset=utf-8"),
    ("/types/a", "text/html", "text/html; charset=utf-8"),
    ("/types/a", "text/plain", "text/plain"),
    ("/any/a", "image/png", "image/png; charset=utf-8"),
    ("/override/a", "text/html;charset=\"UTF-8\"", "text/html; charset=utf-8"),
    ("/override/a", "text/html; charset=latin1", "text/html; charset=latin1"),
    ("/override/moved", "text/html; charset=utf-8", "text/html"),
    ("/source/a", "text/plain", "text/plain; charset=windows-1251"),
    ("/variable/a?cs=koi8-r", "text/plain", "text/plain; charset=koi8-r"),
    ("/variable/a?cs=utf-8", "text/plain", "text/plain"),
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path, upstream, expected", [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in CASES])
async def test_content_type_matches_nginx(twins, path, upstream, expected) -> None:
    sides = twins.start(CONF, typed)
    got = await ask_both(list(reversed(sides)), request(path, extra=f"X-Type: {upstream}\r\nConnection: close\r\n"))
    assert got["nginx"].header(b"Content-Type") == got["wstunnel"].header(b"Content-Type") == expected.encode()
