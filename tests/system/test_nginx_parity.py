"""
nginx as the oracle: the same nginx-syntax config runs under a real nginx
(``nginx_support``) and under wstunnel, both in front of the same kind of
scripted backend; the same raw request goes to each, and what the client
gets and what the backend receives are compared.  Where wstunnel differs on
purpose (doc/proxying.md, "(differs)"), the test asserts the difference.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import pytest
import pytest_twisted

import nginx_support
from nginx_support import (
    Side,
    ask_both,
    echo_through_both,
    find_nginx,
    read_response,
    request,
    scripted_answer,
)
from support import ROOT, ScriptedBackend, accept_for, aio, aio_deferred, read_exactly, switch_answer, upgrade_request

EXAMPLES_DIR = ROOT / "doc" / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.conf"))
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


# ---------------------------------------------------------------- the two proxies


def test_a_missing_nginx_fails_naming_the_package(monkeypatch) -> None:
    monkeypatch.setattr(nginx_support.shutil, "which", lambda name: None)
    monkeypatch.setattr(nginx_support.os, "access", lambda path, mode: False)
    with pytest.raises(pytest.fail.Exception, match="nginx-light"):
        find_nginx()


# ---------------------------------------------------------------- scripted backends


def silent_answer(b: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """Reads the request and never answers."""


def handshaked_answer(b: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """proxy_upgrade.t's backend: bytes in the same write as its 101."""
    b.transport.write(switch_answer(head, b"handshaked\r\n"))


# ---------------------------------------------------------------- the client side


# ---------------------------------------------------------------- the seed configs


def example_conf(path: Path) -> str:
    """A doc/examples file without comments, its listen address and backend port placeholders."""
    text = re.sub(r"#.*", "", path.read_text())
    # One process under test for both proxies (wstunnel's ephemeral listen port needs it).
    text = re.sub(r"\bworker_processes\s+[^;]+;", "worker_processes 1;", text)
    text = re.sub(r"\blisten\s+[^;]+;", "listen {listen};", text)
    return re.sub(r"(\bserver\s+(?:127\.0\.0\.1|localhost)):\d+;", r"\1:{backend};", text)


def example_prefix(conf: str) -> str:
    return re.search(r"\blocation\s+(\S+)\s*\{", conf).group(1)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
async def test_websocket_echo_through_doc_examples(twins, example) -> None:
    """The websockets client checks Sec-WebSocket-Accept: a session means the backend's arrived."""
    conf = example_conf(example)
    talked = await aio(echo_through_both(twins, conf, lambda side: f"ws://127.0.0.1:{side.port}"
                                                                   f"{example_prefix(conf)}room"))
    assert talked == ["wstunnel", "nginx"]


@pytest_twisted.ensureDeferred
async def test_handshaked_and_pipelined_bytes_arrive_first(twins) -> None:
    """nginx-tests proxy_upgrade.t "handshaked" and "handshake pipelined"."""
    sides = twins.start(example_conf(EXAMPLES_DIR / "howto-chat.conf"), handshaked_answer)
    got = {}

    async def scenario(side: Side) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
        writer.write(upgrade_request("/chat/", key=KEY) + b"pipelined")
        switched = await read_response(reader)
        first = await read_exactly(reader, len(b"handshaked\r\n"))
        await aio_deferred(side.backend.connections[0].wait_data(len(b"pipelined")))
        writer.close()
        got[side.name] = switched, first, side.backend.connections[0].received

    for side in sides:
        await aio(scenario(side))
    for switched, first, received in got.values():
        assert switched.status == b"HTTP/1.1 101 Switching Protocols"
        assert switched.header(b"Sec-WebSocket-Accept") == accept_for(KEY)
        assert first == b"handshaked\r\n"
        assert received == b"pipelined"
    assert got["wstunnel"][0].comparable() == got["nginx"][0].comparable()


CLIENT_EXTRAS = (
    "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 10.0.0.2\r\nX-Real-IP: 198.51.100.7\r\n"
    "Proxy-Connection: keep-alive\r\nX-Foo: bar\r\nX-Keep: kept\r\nAccept: */*\r\n"
)


def plain_head(path: str) -> bytes:
    return request(path, "Chat.Example.COM:8080",
                   extra="Connection: keep-alive, X-Foo\r\n" + CLIENT_EXTRAS)


def upgrade_head(path: str) -> bytes:
    return (upgrade_request(path, host="Chat.Example.COM:8080", key=KEY, extra=CLIENT_EXTRAS)
            .replace(b"Connection: keep-alive, Upgrade", b"Connection: Upgrade, X-Foo"))


def seed_headers(conf: str, upgrade: bool) -> set[tuple[bytes, bytes]]:
    """What the seed configs promise the backend, spelled out."""
    def sets(name: str, value: str) -> bool:
        return f"proxy_set_header {name} {value};" in conf

    upstream = re.search(r"proxy_pass http://(\w+);", conf).group(1)
    joined = [(b"X-Forwarded-For", b"203.0.113.9, 10.0.0.2, 127.0.0.1")]
    passed = [(b"X-Forwarded-For", b"203.0.113.9"), (b"X-Forwarded-For", b"10.0.0.2")]
    return {
        (b"Host", b"chat.example.com" if sets("Host", "$host") else upstream.encode()),
        (b"X-Real-IP", b"127.0.0.1" if sets("X-Real-IP", "$remote_addr") else b"198.51.100.7"),
        *(joined if sets("X-Forwarded-For", "$proxy_add_x_forwarded_for") else passed),
        (b"X-Keep", b"kept"),
        *([(b"Connection", b"upgrade"), (b"Upgrade", b"websocket")] if upgrade
          else [(b"Connection", b"close")]),
    }


# doc/proxying.md "(differs)": nginx 1.22 does not parse the client's Connection
# header (so X-Foo, which it names, goes through) and forwards Proxy-Connection.
NGINX_ONLY_HOP_BY_HOP = Counter({(b"Proxy-Connection", b"keep-alive"): 1, (b"X-Foo", b"bar"): 1})


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("make", [plain_head, upgrade_head], ids=["plain", "upgrade"])
async def test_upstream_request_head_of_doc_examples(twins, example, make) -> None:
    """Request line and header multiset at the backend, and what the client got back."""
    conf = example_conf(example)
    sides = twins.start(conf)
    answers = await ask_both(sides, make(example_prefix(conf) + "room?x=1"))
    (w_line, w_heads), (n_line, n_heads) = (s.head(0) for s in sides)
    assert w_line == n_line == f"GET {example_prefix(conf)}room?x=1 HTTP/1.1".encode()
    nginx_only, wstunnel_only = Counter(NGINX_ONLY_HOP_BY_HOP), Counter()
    if make is plain_head and 'Connection "upgrade"' in conf:
        # doc/configuration.md: without a client upgrade no upgrade token is sent.
        nginx_only[(b"Connection", b"upgrade")] += 1
        wstunnel_only[(b"Connection", b"close")] += 1
    assert n_heads - w_heads == nginx_only
    assert w_heads - n_heads == wstunnel_only
    assert seed_headers(conf, upgrade=make is upgrade_head) <= set(w_heads)
    assert answers["wstunnel"].status == answers["nginx"].status
    assert answers["wstunnel"].body == answers["nginx"].body


URI_RULES = """
server {
    listen {listen};
    proxy_http_version 1.1;
    location /a/ { proxy_pass http://127.0.0.1:{backend}; }
    location /b/ { proxy_pass http://127.0.0.1:{backend}/; }
    location /c/ { proxy_pass http://127.0.0.1:{backend}/app/; }
    location /d { proxy_pass http://127.0.0.1:{backend}/app; }
    location /e/ { proxy_pass http://127.0.0.1:{backend}/app; }
}
"""


@pytest_twisted.ensureDeferred
async def test_proxy_pass_uri_replacement(twins) -> None:
    """The rows of nginx-behaviour.md 4.6 that need no variables or regex."""
    sides = twins.start(URI_RULES)
    targets = ["/a/x%20y/../z?q=1&r=%2F", "/b/x?q=1", "/c/x%2Fy?q", "/c//x", "/dnext/x", "/e/x",
               "/a//x/./y%41", "/c/%7Euser/a%20b?k=%20"]
    for target in targets:
        await ask_both(sides, request(target))
    lines = {side.name: [line for line, _ in side.heads()] for side in sides}
    assert lines["wstunnel"] == lines["nginx"]
    assert lines["nginx"][:6] == [
        b"GET /a/x%20y/../z?q=1&r=%2F HTTP/1.1", b"GET /x?q=1 HTTP/1.1", b"GET /app/x/y?q HTTP/1.1",
        b"GET /app/x HTTP/1.1", b"GET /appnext/x HTTP/1.1", b"GET /appx HTTP/1.1",
    ]


LOCATIONS = """
server {
    listen {listen};
    proxy_http_version 1.1;
    location /chat/ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc chat-prefix; }
    location = /chat/ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc chat-exact; }
    location = /exact { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc exact; }
    location = /only/ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc only; }
    location /longer/path/ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc longer; }
    location /longer/ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc shorter; }
    location /static/ { }
}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "target, host, nginx_says",
    [
        ("/chat/", "a", "chat-exact"),
        ("/chat/x", "a", "chat-prefix"),
        ("/chat?x=1", "Ex.COM:99", "301 http://ex.com:PORT/chat/?x=1"),
        ("/chat", "ex.com.", "301 http://ex.com:PORT/chat/"),
        ("/exact", "a", "exact"),
        ("/exact/", "a", "404"),
        ("/exact?y", "a", "exact"),
        ("/only", "a", "301 http://a:PORT/only/"),  # an "=" location redirects too
        ("/only/x", "a", "404"),
        ("/longer/path/x", "a", "longer"),
        ("/longer/pat", "a", "shorter"),
        ("/longer/path", "a", "301 http://a:PORT/longer/path/"),
        ("/static", "a", "404"),  # no proxy_pass, no redirect
        ("/static/x", "a", "404"),
        ("/nothing", "a", "404"),
        ("/", "a", "404"),
        ("/CHAT/", "a", "404"),
    ],
)
async def test_location_matching_and_the_slash_redirect(twins, target, host, nginx_says) -> None:
    """Status, Location (each proxy's own port made neutral) and the location that answered."""
    sides = twins.start(LOCATIONS)
    answers = await ask_both(sides, request(target, host))
    seen = {}
    for side in sides:
        answer = answers[side.name]
        code = answer.status.split(b" ")[1].decode()
        if code == "200":
            seen[side.name] = dict(side.head(0)[1].elements())[b"X-Loc"].decode()
        elif code == "301":
            location = answer.header(b"Location").decode().replace(str(side.port), "PORT")
            seen[side.name] = f"301 {location}"
        else:
            seen[side.name] = code
    assert seen == {"wstunnel": nginx_says, "nginx": nginx_says}


SERVERS = """
proxy_http_version 1.1;
server { listen {listen}; server_name first.test;
         location / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Server first; } }
server { listen {listen}; server_name example.com www.example.com;
         location / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Server exact; } }
server { listen {listen}; server_name *.example.org;
         location / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Server wildcard; } }
server { listen {listen}; server_name *.deep.example.org;
         location / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Server deeper; } }
server { listen {listen}; server_name "";
         location / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Server no-host; } }
server { listen {listen} default_server; server_name default.test;
         location / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Server default;
                      proxy_set_header X-Name $server_name; } }
"""


@pytest_twisted.ensureDeferred
async def test_server_selection_by_host(twins) -> None:
    sides = twins.start(SERVERS)
    hosts = ["example.com", "WWW.Example.COM:8080", "example.com.", "a.example.org",
             "a.b.example.org", "x.deep.example.org", "example.org", "first.test", "unknown.test",
             "127.0.0.1"]
    for host in hosts:
        await ask_both(sides, request("/", host))
    await ask_both(sides, b"GET / HTTP/1.0\r\n\r\n")
    await ask_both(sides, b"GET http://a.example.org/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
    chosen = {
        side.name: [v for _, f in side.heads() for n, v in sorted(f)
                    if n in (b"X-Server", b"X-Name")]
        for side in sides
    }
    assert chosen["wstunnel"] == chosen["nginx"]
    assert b" ".join(chosen["nginx"]) == (
        b"exact exact exact wildcard wildcard deeper default.test default first "
        b"default.test default default.test default no-host wildcard"
    )


ERRORS = """
server {
    listen {listen};
    location /refused/ { proxy_pass http://127.0.0.1:{refused}; }
    location /silent/ { proxy_pass http://127.0.0.1:{backend}; proxy_read_timeout 200ms; }
}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "path, nginx_status, our_status",
    [
        ("/refused/", b"502 Bad Gateway", b"502 Bad Gateway"),
        # A documented difference (doc/proxying.md): nginx's own spelling of
        # the 504 reason against RFC 9110's, in the status line and page title.
        ("/silent/", b"504 Gateway Time-out", b"504 Gateway Timeout"),
    ],
)
@pytest.mark.parametrize("make", [request, upgrade_request], ids=["plain", "upgrade"])
async def test_upstream_errors(twins, refused_port, path, nginx_status, our_status, make) -> None:
    """Status codes and pages agree but for the server token and the reason's spelling."""
    sides = twins.start(ERRORS.replace("{refused}", str(refused_port)), silent_answer)
    answers = await ask_both(sides, make(path))
    assert answers["nginx"].status == b"HTTP/1.1 " + nginx_status
    assert answers["wstunnel"].status == b"HTTP/1.1 " + our_status
    pages = {name: answer.body.replace(answer.header(b"Server"), b"TOKEN")
             for name, answer in answers.items()}
    assert pages["wstunnel"] == pages["nginx"].replace(nginx_status[4:], our_status[4:])


PLAIN = """
server {
    listen {listen};
    location / {
        proxy_pass http://127.0.0.1:{backend};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "method, response",
    [
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                b"X-App: 1\r\n\r\nhello"),
        ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-App: 1\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: 1\r\n\r\n"),
        ("GET", b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nSet-Cookie: a=1\r\n"
                b"Set-Cookie: b=2\r\n\r\nnope"),
        ("GET", b"HTTP/1.0 200 OK\r\nX-App: 1\r\n\r\nuntil close"),
    ],
    ids=["length", "chunked", "head", "404-cookies", "close-delimited"],
)
async def test_plain_http_through_a_websocket_location(twins, method, response) -> None:
    sides = twins.start(PLAIN, scripted_answer(response))
    answers = await ask_both(sides, request("/page", method=method))
    w, n = answers["wstunnel"], answers["nginx"]
    assert (w.status, w.body, w.chunked) == (n.status, n.body, n.chunked)
    assert w.comparable() == n.comparable()
    assert n.body == (b"" if method == "HEAD" else response.split(b"\r\n\r\n", 1)[1]
                      .replace(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"))


@pytest_twisted.ensureDeferred
async def test_keep_alive_is_announced(twins) -> None:
    """nginx names keep-alive on every HTTP/1.1 answer it keeps the connection for; so do we."""
    sides = twins.start(PLAIN, scripted_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    answers = await ask_both(sides, request("/"))
    said = {name: answer.header(b"Connection") for name, answer in answers.items()}
    assert said == {"nginx": b"keep-alive", "wstunnel": b"keep-alive"}


@pytest_twisted.ensureDeferred
async def test_http_1_0_keep_alive(twins) -> None:
    sides = twins.start(PLAIN, scripted_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))

    async def two_requests(side: Side) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
        try:
            writer.write(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            first = await read_response(reader)
            assert (first.header(b"Connection"), first.body) == (b"keep-alive", b"ok"), side.name
            writer.write(b"GET /b HTTP/1.0\r\n\r\n")
            second = await read_response(reader)
            assert (second.header(b"Connection"), second.body) == (b"close", b"ok"), side.name
        finally:
            writer.close()

    for side in reversed(sides):  # nginx first: it is the oracle
        await aio(two_requests(side))


HOST_VARIABLE = """
server {
    listen {listen};
    server_name localhost;
    location / {
        proxy_pass http://127.0.0.1:{backend};
        proxy_http_version 1.1;
        proxy_set_header X-Host $host;
        proxy_set_header X-Http-Host $http_host;
    }
}
"""


@pytest_twisted.ensureDeferred
async def test_host_variable(twins) -> None:
    sides = twins.start(HOST_VARIABLE)
    for raw in [
        request("/", "Ex.COM.:99"), request("/", "abcd-ef.g02.xyz:"), request("/", "[::1]:8080"),
        b"GET http://Abs.Example:81/x HTTP/1.1\r\nHost: other\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n",
    ]:
        await ask_both(sides, raw)
    seen = {
        side.name: [sorted((n, v) for n, v in f if n.startswith(b"X-")) for _, f in side.heads()]
        for side in sides
    }
    assert seen["wstunnel"] == seen["nginx"]
    assert [dict(f)[b"X-Host"] for f in seen["nginx"]] == [
        b"ex.com", b"abcd-ef.g02.xyz", b"[::1]", b"abs.example", b"localhost"]


BARE = """
server {
    listen {listen};
    location / { proxy_pass http://127.0.0.1:{backend}; }
}
"""


@pytest_twisted.ensureDeferred
async def test_upgrade_without_the_howto_lines_differs_on_purpose(twins) -> None:
    """
    doc/proxying.md "(differs)": nginx 1.22 sends HTTP/1.0 and drops Upgrade
    unless the config says otherwise, so its backend sees a plain request;
    wstunnel forwards the upgrade and the WebSocket opens.
    """
    sides = twins.start(BARE)
    answers = await ask_both(sides, upgrade_request("/ws", key=KEY))
    (w_line, w_heads), (n_line, n_heads) = (s.head(0) for s in sides)
    assert (w_line, n_line) == (b"GET /ws HTTP/1.1", b"GET /ws HTTP/1.0")
    assert w_heads - n_heads == Counter(
        {(b"Connection", b"upgrade"): 1, (b"Upgrade", b"websocket"): 1}
    )
    assert n_heads - w_heads == Counter({(b"Connection", b"close"): 1})
    assert (b"Host", b"127.0.0.1:BACKEND") in w_heads
    assert answers["wstunnel"].status == b"HTTP/1.1 101 Switching Protocols"
    assert answers["nginx"].status == b"HTTP/1.1 200 OK"
