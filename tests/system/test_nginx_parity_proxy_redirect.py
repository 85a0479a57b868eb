"""
nginx as the oracle for ``proxy_redirect`` (issue 13): the implicit and
explicit ``default`` with and without a URI in proxy_pass, a list
inherited from the server replacing the implicit default, ``off``, regexes
with numbered and named captures (``~`` and ``~*``), variables in both
parts, and the Location and Refresh headers.  The backend answers a 302
whose Location (and Refresh URL) is the request's X-Loc header, with
BACKEND read as its own port.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from nginx_support import Response, Side, ask_both, request
from support import ScriptedBackend

CONF = """
server {
    listen {listen};
    proxy_redirect http://old.example/ /new/;
    location /inherited/ { proxy_pass http://127.0.0.1:{backend}/app/; }
    location /uri/ {
        proxy_pass http://127.0.0.1:{backend}/app/;
        proxy_redirect default;
    }
    location /bare/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_redirect default;
        proxy_redirect http://$host/ /host/;
    }
    location /off/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_redirect off;
    }
    location /regex/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_redirect ~^http://([^/:]+):\\d+/x/(?<rest>.*)$ /regex/$rest?from=$1;
        proxy_redirect ~*^HTTPS://CASE\\.example/ http://$host/case/;
        proxy_redirect "" /prefixed;
    }
}
server {
    listen {listen};
    server_name implicit.example;
    location /app/ { proxy_pass http://127.0.0.1:{backend}; }
    location /u/ { proxy_pass http://127.0.0.1:{backend}/v/; }
}
"""


def moved(backend: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """A 302 to the request's X-Loc, in Location and in Refresh; then closes."""
    target = next(line[6:].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"x-loc:"))
    target = target.replace(b"BACKEND", str(backend.transport.getHost().port).encode())
    backend.transport.write(
        b"HTTP/1.1 302 Found\r\nLocation: " + target + b"\r\nRefresh: 5; URL=" + target
        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    backend.transport.loseConnection()


def redirects(response: Response, side: Side) -> tuple[bytes | None, bytes | None]:
    """Location and Refresh with each side's own ports made neutral."""
    def neutral(value: bytes | None) -> bytes | None:
        if value is None:
            return None
        return value.replace(b":%d" % side.port, b":PORT").replace(b":%d" % side.backend_port, b":BACKEND")
    return neutral(response.header(b"Location")), neutral(response.header(b"Refresh"))


CASES = [
    pytest.param("/inherited/a", "http://old.example/p?q", "localhost", id="inherited-list"),
    pytest.param("/inherited/a", "http://127.0.0.1:BACKEND/app/p", "localhost", id="inherited-list-no-default"),
    pytest.param("/uri/a", "http://127.0.0.1:BACKEND/app/p?q=1", "localhost", id="default-uri"),
    pytest.param("/uri/a", "http://127.0.0.1:BACKEND/other", "localhost", id="default-uri-no-match"),
    pytest.param("/bare/a", "http://127.0.0.1:BACKEND/p", "localhost", id="default-bare"),
    pytest.param("/bare/a", "http://localhost/p", "localhost", id="variable-pattern"),
    pytest.param("/off/a", "http://127.0.0.1:BACKEND/p", "localhost", id="off"),
    pytest.param("/regex/a", "http://127.0.0.1:BACKEND/x/deep/er", "localhost", id="regex-captures"),
    pytest.param("/regex/a", "https://case.example/z", "localhost", id="regex-caseless"),
    pytest.param("/regex/a", "https://other.example/z", "localhost", id="empty-pattern"),
    pytest.param("/regex/a", "/relative", "localhost", id="relative"),
    pytest.param("/app/a", "http://127.0.0.1:BACKEND/app/b", "implicit.example", id="implicit-bare"),
    pytest.param("/u/a", "http://127.0.0.1:BACKEND/v/b", "implicit.example", id="implicit-uri"),
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path, location, host", CASES)
async def test_proxy_redirect_matches_nginx(twins, path, location, host) -> None:
    sides = twins.start(CONF, moved)
    got = await ask_both(list(reversed(sides)), request(path, host=host, extra=f"X-Loc: {location}\r\nConnection: close\r\n"))
    by_name = {side.name: side for side in sides}
    assert got["nginx"].status.split(b" ")[1] == b"302" and got["nginx"].header(b"Location")
    assert redirects(got["wstunnel"], by_name["wstunnel"]) == redirects(got["nginx"], by_name["nginx"])
