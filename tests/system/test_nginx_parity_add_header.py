"""
nginx as the oracle for ``add_header`` and ``server_tokens`` (issue 13):
one config under nginx and wstunnel, and the headers each adds compared:
all-or-nothing inheritance, ``always`` on the upstream's 404, on the
proxy's own 404 and 502 and on a 101, a variable in the value, an empty
value, and no version anywhere with ``server_tokens off``.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from nginx_support import Response, ask_both, request
from support import ScriptedBackend, switch_answer, unused_ports

CONF = """
server {
    listen {listen};
    server_tokens off;
    add_header X-Server "s-$host";
    add_header X-Always "yes" always;
    location /api/ { proxy_pass http://127.0.0.1:{backend}; }
    location /own/ {
        add_header X-Own "o-$uri" always;
        add_header X-Empty "";
        proxy_pass http://127.0.0.1:{backend};
    }
    location /dead/ { proxy_pass http://127.0.0.1:{dead}; }
    location /ws/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
}
"""

WS_REQUEST = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def by_path(backend: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """A 101 under /ws/, a 404 for a path with "missing" in it, else a 200; then closes."""
    line = head.split(b"\r\n", 1)[0]
    if b" /ws/" in line:
        backend.transport.write(switch_answer(head))
        return
    status = b"404 Not Found" if b"missing" in line else b"200 OK"
    backend.transport.write(b"HTTP/1.1 " + status + b"\r\nX-Up: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    backend.transport.loseConnection()


def added(response: Response) -> list[tuple[bytes, bytes]]:
    """The X- headers of an answer, in order (nginx's and wstunnel's own ones differ otherwise)."""
    return [(n, v) for n, v in response.headers if n.lower().startswith(b"x-")]


CASES = [
    pytest.param("/api/a", [(b"X-Up", b"1"), (b"X-Server", b"s-localhost"), (b"X-Always", b"yes")], id="inherited"),
    pytest.param("/own/a", [(b"X-Up", b"1"), (b"X-Own", b"o-/own/a")], id="replaced"),
    pytest.param("/api/missing", [(b"X-Up", b"1"), (b"X-Always", b"yes")], id="upstream-404"),
    pytest.param("/own/missing", [(b"X-Up", b"1"), (b"X-Own", b"o-/own/missing")], id="upstream-404-own"),
    pytest.param("/nowhere", [(b"X-Always", b"yes")], id="own-404"),
    pytest.param("/dead/a", [(b"X-Always", b"yes")], id="own-502"),
]


@pytest.fixture
def conf() -> str:
    dead, = unused_ports(1)
    return CONF.replace("{dead}", str(dead))


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path, expected", CASES)
async def test_added_headers_match_nginx(twins, conf, path, expected) -> None:
    sides = twins.start(conf, by_path)
    got = await ask_both(list(reversed(sides)), request(path, extra="Connection: close\r\n"))
    assert added(got["nginx"]) == added(got["wstunnel"]) == expected


@pytest_twisted.ensureDeferred
async def test_a_101_gets_only_the_always_headers(twins, conf) -> None:
    sides = twins.start(conf, by_path)
    got = await ask_both(list(reversed(sides)), request("/ws/a", extra=WS_REQUEST))
    assert [r.status.split(b" ")[1] for r in got.values()] == [b"101", b"101"]
    assert added(got["nginx"]) == added(got["wstunnel"]) == [(b"X-Always", b"yes")]


@pytest_twisted.ensureDeferred
async def test_server_tokens_off_shows_no_version(twins, conf) -> None:
    sides = twins.start(conf, by_path)
    got = await ask_both(list(reversed(sides)), request("/dead/a", extra="Connection: close\r\n"))
    assert got["nginx"].header(b"Server") == b"nginx"
    assert got["wstunnel"].header(b"Server") == b"wstunnel"
    assert b"<center>nginx</center>" in got["nginx"].body
    assert b"<center>wstunnel</center>" in got["wstunnel"].body
