"""
nginx 1.22 as the oracle for auth_request (issue 15): one config under nginx
and wstunnel, both asking the same scripted auth service.  Compared: the
client's status and ``WWW-Authenticate``, whether the backend was reached,
what the auth service was sent (method, URI, the original headers, no body)
and the ``auth_request_set`` variable passed on to the backend.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from nginx_support import Side, parse_request_head
from support import ScriptedBackend, aio, listen_backend
from test_nginx_parity_access import ask_from

CONF = """
server {
    listen {listen};
    location / {
        auth_request /auth;
        auth_request_set $auth_user $upstream_http_x_user;
        auth_request_set $auth_said "$upstream_status:$upstream_http_x_user";
        proxy_set_header X-User $auth_user;
        proxy_set_header X-Said $auth_said;
        proxy_pass http://127.0.0.1:{backend};
    }
    location = /auth {
        proxy_pass http://127.0.0.1:{auth}/check;
        proxy_set_header X-Original-URI $request_uri;
        proxy_read_timeout 1s;
    }
    location /public/ { auth_request off; proxy_pass http://127.0.0.1:{backend}; }
    location /any/ {
        satisfy any;
        allow 127.0.0.2;
        deny all;
        auth_request /auth;
        proxy_pass http://127.0.0.1:{backend};
    }
    location /returned/ { auth_request /no; proxy_pass http://127.0.0.1:{backend}; }
    location = /no { return 403; }
}
"""

ANSWERS = {
    b"ok": b"HTTP/1.1 200 OK\r\nX-User: alice\r\nContent-Length: 5\r\n\r\nhello",
    b"deny": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    b"login": b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="sso"\r\nX-User: x\r\nContent-Length: 0\r\n\r\n',
    b"redirect": b"HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n",
    b"switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"nocontent": b"HTTP/1.1 204 No Content\r\nX-User: bob\r\n\r\n",
}


def auth_service(b: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """Answers by the client's X-Want header; "hang" never answers."""
    _, headers = parse_request_head(head)
    want = next((value for (name, value) in headers if name.lower() == b"x-want"), b"ok")
    if want == b"hang":
        return
    b.transport.write(ANSWERS[want])
    b.transport.loseConnection()


@pytest.fixture
def auth():
    factory, port = listen_backend(auth_service)
    yield factory, port.getHost().port
    for conn in factory.connections:
        conn.transport.abortConnection()
    port.stopListening()


async def compare(sides: list[Side], auth_factory, cases: list[tuple]) -> list[tuple]:
    """Each case asked of both; nginx's (status, challenge, backend reached, backend head, auth head)."""
    seen = []
    for client, path, extra, method in cases:
        answers = {}
        for side in sides:
            before, asked = len(side.backend.heads), len(auth_factory.heads)
            status, challenge = await aio(ask_from(client, side.port, path, method, extra))
            reached = side.head(before) if len(side.backend.heads) > before else None
            auth_head = auth_factory.heads[asked] if len(auth_factory.heads) > asked else None
            answers[side.name] = (status, challenge, _comparable(reached), _auth_seen(auth_head))
        assert answers["wstunnel"] == answers["nginx"], (path, extra)
        seen.append(answers["nginx"])
    return seen


def _comparable(reached) -> tuple | None:
    """The backend's head: its request line's method and URI and the headers auth_request set."""
    if reached is None:
        return None
    line, headers = reached
    return (line.rsplit(b" ", 1)[0], headers[(b"X-User", b"alice")], sorted(v for (n, v) in headers if n == b"X-Said"))


def _auth_seen(head: bytes | None) -> tuple | None:
    if head is None:
        return None
    line, headers = parse_request_head(head)
    names = {name.lower(): value for (name, value) in headers}
    return line.rsplit(b" ", 1)[0], names.get(b"x-original-uri"), names.get(b"x-want"), names.get(b"upgrade")


@pytest_twisted.ensureDeferred
async def test_auth_request_as_nginx(twins, auth) -> None:
    factory, auth_port = auth
    sides = twins.start(CONF.replace("{auth}", str(auth_port)))
    seen = await compare(
        sides,
        factory,
        [
            ("127.0.0.5", "/app?x=1", "", "GET"),
            ("127.0.0.5", "/app", "X-Want: nocontent\r\n", "GET"),
            ("127.0.0.5", "/app", "X-Want: deny\r\n", "GET"),
            ("127.0.0.5", "/app", "X-Want: login\r\n", "GET"),
            ("127.0.0.5", "/app", "X-Want: redirect\r\n", "GET"),
            ("127.0.0.5", "/app", "X-Want: switch\r\n", "GET"),
            ("127.0.0.5", "/public/", "X-Want: deny\r\n", "GET"),
            ("127.0.0.2", "/any/", "X-Want: deny\r\n", "GET"),
            ("127.0.0.5", "/any/", "X-Want: deny\r\n", "GET"),
            ("127.0.0.5", "/any/", "", "GET"),
            ("127.0.0.5", "/returned/", "", "GET"),
        ],
    )
    assert [each[0] for each in seen] == [200, 200, 403, 401, 500, 500, 200, 200, 403, 200, 403]
    assert seen[0][2] == (b"GET /app?x=1", 1, [b"200:alice"])
    assert seen[0][3] == (b"GET /check", b"/app?x=1", None, None)
    assert seen[3][1] == b'Bearer realm="sso"'


@pytest_twisted.ensureDeferred
async def test_a_post_is_asked_about_as_a_get_without_its_body(twins, auth) -> None:
    factory, auth_port = auth
    sides = twins.start(CONF.replace("{auth}", str(auth_port)))
    seen = await compare(sides, factory, [("127.0.0.5", "/app", "Content-Length: 3\r\n\r\nabc", "POST")])
    assert seen[0][0] == 200 and seen[0][3][0] == b"GET /check"
    assert all(b"abc" not in conn.received for conn in factory.connections)


@pytest_twisted.ensureDeferred
async def test_an_upgrade_waits_for_the_auth_service(twins, auth) -> None:
    factory, auth_port = auth
    sides = twins.start(CONF.replace("{auth}", str(auth_port)))
    upgrade = "Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    seen = await compare(
        sides,
        factory,
        [("127.0.0.5", "/ws", upgrade + "X-Want: deny\r\n", "GET"), ("127.0.0.5", "/ws", upgrade + "X-Want: hang\r\n", "GET")],
    )
    assert [(status, reached) for status, _, reached, _ in seen] == [(403, None), (500, None)]
    assert all(not side.backend.heads for side in sides)
