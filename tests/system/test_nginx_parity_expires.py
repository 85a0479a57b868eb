"""
nginx as the oracle for ``expires`` (issue 13): every form (a time, a
negative one, ``epoch``, ``max``, ``0``, ``modified``, ``@`` time of day,
a variable), inheritance and ``off``, the status list, and the upstream's
own Expires and Cache-Control rewritten in place.  Dates that depend on
the moment of the request are compared as "set" only; ``0`` is compared
with the answer's Date.
"""

from __future__ import annotations

import re

import pytest
import pytest_twisted

from nginx_support import Response, ask_both, request
from support import ScriptedBackend

CONF = """
server {
    listen {listen};
    expires 1h;
    location /inherited/ { proxy_pass http://127.0.0.1:{backend}; }
    location /off/ { proxy_pass http://127.0.0.1:{backend}; expires off; }
    location /negative/ { proxy_pass http://127.0.0.1:{backend}; expires -1; }
    location /epoch/ { proxy_pass http://127.0.0.1:{backend}; expires epoch; }
    location /max/ { proxy_pass http://127.0.0.1:{backend}; expires max; }
    location /zero/ { proxy_pass http://127.0.0.1:{backend}; expires 0; }
    location /modified/ { proxy_pass http://127.0.0.1:{backend}; expires modified 1d; }
    location /daily/ { proxy_pass http://127.0.0.1:{backend}; expires @3h30m; }
    location /variable/ { proxy_pass http://127.0.0.1:{backend}; expires $arg_e; }
}
"""


def by_path(backend: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """404 for "missing", a Last-Modified for "lm", the upstream's own caching headers for "own"."""
    line = head.split(b"\r\n", 1)[0]
    status = b"404 Not Found" if b"missing" in line else b"200 OK"
    extra = b""
    if b"lm" in line:
        extra += b"Last-Modified: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
    if b"own" in line:
        extra += b"Cache-Control: private\r\nExpires: 0\r\nX-Between: 1\r\nCache-Control: no-store\r\n"
    backend.transport.write(b"HTTP/1.1 " + status + b"\r\n" + extra + b"Content-Length: 2\r\nConnection: close\r\n\r\nok")
    backend.transport.loseConnection()


def caching(response: Response) -> list[tuple[bytes, bytes]]:
    """Expires and Cache-Control, in order; a date of now or later is "SET", the Date itself "DATE"."""
    out = []
    for name, value in response.headers:
        if name.lower() == b"expires":
            if value == response.header(b"Date"):
                value = b"DATE"
            elif not re.search(rb" (1970|2001|2037) ", value):
                value = b"SET"
        if name.lower() in (b"expires", b"cache-control", b"x-between"):
            out.append((name.lower(), value))
    return out


CASES = [
    ("/inherited/a", [(b"expires", b"SET"), (b"cache-control", b"max-age=3600")]),
    ("/inherited/missing", []),
    ("/off/a", []),
    ("/negative/a", [(b"expires", b"SET"), (b"cache-control", b"no-cache")]),
    ("/epoch/a", [(b"expires", b"Thu, 01 Jan 1970 00:00:01 GMT"), (b"cache-control", b"no-cache")]),
    ("/max/a", [(b"expires", b"Thu, 31 Dec 2037 23:55:55 GMT"), (b"cache-control", b"max-age=315360000")]),
    ("/zero/a", [(b"expires", b"DATE"), (b"cache-control", b"max-age=0")]),
    ("/modified/lm", [(b"expires", b"Tue, 02 Jan 2001 00:00:00 GMT"), (b"cache-control", b"no-cache")]),
    ("/modified/a", [(b"expires", b"SET"), (b"cache-control", b"max-age=86400")]),
    ("/variable/a?e=2h", [(b"expires", b"SET"), (b"cache-control", b"max-age=7200")]),
    ("/variable/a?e=epoch", [(b"expires", b"Thu, 01 Jan 1970 00:00:01 GMT"), (b"cache-control", b"no-cache")]),
    ("/variable/a?e=bad", []),
    ("/inherited/own", [(b"cache-control", b"max-age=3600"), (b"expires", b"SET"), (b"x-between", b"1")]),
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path, expected", [pytest.param(p, e, id=p) for p, e in CASES])
async def test_expires_matches_nginx(twins, path, expected) -> None:
    sides = twins.start(CONF, by_path)
    got = await ask_both(list(reversed(sides)), request(path, extra="Connection: close\r\n"))
    assert caching(got["nginx"]) == caching(got["wstunnel"]) == expected


@pytest_twisted.ensureDeferred
async def test_a_time_of_day_is_the_next_one(twins) -> None:
    """The same moment under both (03:30 local time, as nginx counts it), within the next day."""
    sides = twins.start(CONF, by_path)
    got = await ask_both(list(reversed(sides)), request("/daily/a", extra="Connection: close\r\n"))
    assert got["nginx"].header(b"Expires") == got["wstunnel"].header(b"Expires")
    for response in got.values():
        assert 0 < int(response.header(b"Cache-Control").removeprefix(b"max-age=")) <= 86400
