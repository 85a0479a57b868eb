"""
nginx 1.22 as the oracle for access control (issue 15): one config under
nginx and wstunnel, clients bound to different loopback addresses
(127.0.0.2, 127.0.0.5) for allow/deny, an htpasswd file holding one user
per format nginx reads, ``satisfy any`` and ``limit_except``; the status,
the ``WWW-Authenticate`` challenge and whether the backend saw the request
compared.  A denied WebSocket upgrade never reaches either backend.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import ctypes.util
import hashlib
import subprocess
from pathlib import Path

import pytest_twisted

from nginx_support import Side, read_response
from support import aio

CONF = """
server {
    listen {listen};
    allow 127.0.0.2;
    allow 127.0.0.0/30;
    deny all;
    location /inherit/ { proxy_pass http://127.0.0.1:{backend}; }
    location /first/ { deny 127.0.0.5; allow 127.0.0.0/8; deny all; proxy_pass http://127.0.0.1:{backend}; }
    location /v6only/ { allow ::1; deny all; proxy_pass http://127.0.0.1:{backend}; }
    location /pw/ {
        allow all;
        auth_basic "Members of $host";
        auth_basic_user_file {users};
        proxy_pass http://127.0.0.1:{backend};
        location /pw/off/ { auth_basic off; proxy_pass http://127.0.0.1:{backend}; }
    }
    location /any/ {
        satisfy any;
        auth_basic "any";
        auth_basic_user_file {users};
        proxy_pass http://127.0.0.1:{backend};
    }
    location /missing/ {
        allow all;
        auth_basic "m";
        auth_basic_user_file {missing};
        proxy_pass http://127.0.0.1:{backend};
    }
    location /ro/ {
        allow all;
        limit_except GET { allow 127.0.0.2; deny all; }
        proxy_pass http://127.0.0.1:{backend};
        location /ro/nested/ { proxy_pass http://127.0.0.1:{backend}; }
    }
    location /ret/ { return 204; }
}
"""

FORMATS = ["plain", "sha", "ssha", "apr1", "md5", "sha256", "sha512", "bcrypt"]


def _libcrypt(password: bytes, setting: bytes) -> bytes:
    function = ctypes.CDLL(ctypes.util.find_library("crypt")).crypt
    function.restype = ctypes.c_char_p
    function.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    return function(password, setting)


def _openssl(flag: str, password: str) -> bytes:
    made = subprocess.run(["openssl", "passwd", flag, "-salt", "s4ltS4lt", password], capture_output=True, check=True)
    return made.stdout.strip()


def htpasswd_line(kind: str, password: str) -> bytes:
    """One user named after its format, the password field made as the usual tools make it."""
    secret = password.encode()
    fields = {
        "plain": lambda: b"{PLAIN}" + secret,
        "sha": lambda: b"{SHA}" + base64.b64encode(hashlib.sha1(secret).digest()),
        "ssha": lambda: b"{SSHA}" + base64.b64encode(hashlib.sha1(secret + b"salt").digest() + b"salt"),
        "apr1": lambda: _openssl("-apr1", password),
        "md5": lambda: _openssl("-1", password),
        "sha256": lambda: _openssl("-5", password),
        "sha512": lambda: _openssl("-6", password),
        "bcrypt": lambda: _libcrypt(secret, b"$2y$05$abcdefghijklmnopqrstuu"),
    }
    return kind.encode() + b":" + fields[kind]() + b"\n"


def basic(user: str, password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() + "\r\n"


async def ask_from(client: str, port: int, path: str, method: str = "GET", extra: str = "") -> tuple:
    """One request from ``client``'s address (a bound client socket): its status and challenge."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(client, 0))
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n{extra}\r\n".encode())
        response = await read_response(reader, method.encode())
    finally:
        writer.close()
    return int(response.status.split()[1]), response.header(b"WWW-Authenticate")


def start(twins, tmp_path: Path) -> list[Side]:
    users = tmp_path / "htpasswd"
    users.write_bytes(b"# one user per format\n" + b"".join(htpasswd_line(kind, f"pw-{kind}") for kind in FORMATS))
    conf = CONF.replace("{users}", str(users)).replace("{missing}", str(tmp_path / "nothere"))
    return twins.start(conf)


async def compare(sides: list[Side], cases: list[tuple]) -> list[tuple]:
    """Each case asked of both proxies; nginx's answers, after checking wstunnel's are the same."""
    seen = []
    for case in cases:
        answers = {}
        for side in sides:
            before = len(side.backend.heads)
            status, challenge = await aio(ask_from(case[0], side.port, *case[1:]))
            answers[side.name] = (status, challenge, len(side.backend.heads) > before)
        assert answers["wstunnel"] == answers["nginx"], case
        seen.append(answers["nginx"])
    return seen


@pytest_twisted.ensureDeferred
async def test_allow_and_deny_by_client_address(twins, tmp_path: Path) -> None:
    sides = start(twins, tmp_path)
    seen = await compare(
        sides,
        [
            ("127.0.0.2", "/inherit/"),
            ("127.0.0.3", "/inherit/"),
            ("127.0.0.5", "/inherit/"),
            ("127.0.0.5", "/first/"),
            ("127.0.0.6", "/first/"),
            ("127.0.0.2", "/v6only/"),
            ("127.0.0.5", "/nolocation"),
            ("127.0.0.5", "/ret/"),
        ],
    )
    assert [status for status, _, _ in seen] == [200, 200, 403, 403, 200, 403, 403, 204]


@pytest_twisted.ensureDeferred
async def test_a_denied_upgrade_never_reaches_the_backend(twins, tmp_path: Path) -> None:
    sides = start(twins, tmp_path)
    upgrade = "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    seen = await compare(sides, [("127.0.0.5", "/inherit/", "GET", upgrade), ("127.0.0.2", "/pw/", "GET", upgrade)])
    assert seen == [(403, None, False), (401, b'Basic realm="Members of a.test"', False)]
    assert all(not side.backend.heads for side in sides)


@pytest_twisted.ensureDeferred
async def test_basic_auth_with_each_htpasswd_format(twins, tmp_path: Path) -> None:
    sides = start(twins, tmp_path)
    cases = []
    for kind in FORMATS:
        cases.append(("127.0.0.5", "/pw/", "GET", basic(kind, f"pw-{kind}")))
        cases.append(("127.0.0.5", "/pw/", "GET", basic(kind, "wrong")))
    seen = await compare(sides, cases)
    assert [status for status, _, _ in seen] == [200, 401] * len(FORMATS)


@pytest_twisted.ensureDeferred
async def test_basic_auth_refusals(twins, tmp_path: Path) -> None:
    sides = start(twins, tmp_path)
    seen = await compare(
        sides,
        [
            ("127.0.0.5", "/pw/"),
            ("127.0.0.5", "/pw/", "GET", basic("nobody", "x")),
            ("127.0.0.5", "/pw/", "GET", "Authorization: Basic !!!!\r\n"),
            ("127.0.0.5", "/pw/", "GET", "Authorization: Bearer abc\r\n"),
            ("127.0.0.5", "/pw/", "GET", "Authorization: Basic " + base64.b64encode(b"nocolon").decode() + "\r\n"),
            ("127.0.0.5", "/pw/off/"),
            ("127.0.0.5", "/missing/", "GET", basic("plain", "pw-plain")),
        ],
    )
    assert [status for status, _, _ in seen] == [401, 401, 401, 401, 401, 200, 403]


@pytest_twisted.ensureDeferred
async def test_satisfy_any(twins, tmp_path: Path) -> None:
    sides = start(twins, tmp_path)
    seen = await compare(
        sides,
        [
            ("127.0.0.2", "/any/"),
            ("127.0.0.5", "/any/"),
            ("127.0.0.5", "/any/", "GET", basic("sha", "pw-sha")),
            ("127.0.0.5", "/any/", "GET", basic("sha", "no")),
        ],
    )
    assert [status for status, _, _ in seen] == [200, 401, 200, 401]


@pytest_twisted.ensureDeferred
async def test_limit_except(twins, tmp_path: Path) -> None:
    sides = start(twins, tmp_path)
    seen = await compare(
        sides,
        [
            ("127.0.0.5", "/ro/", "GET"),
            ("127.0.0.5", "/ro/", "HEAD"),
            ("127.0.0.5", "/ro/", "POST", "Content-Length: 0\r\n"),
            ("127.0.0.2", "/ro/", "POST", "Content-Length: 0\r\n"),
            ("127.0.0.5", "/ro/", "DELETE"),
            ("127.0.0.5", "/ro/nested/", "DELETE"),
            ("127.0.0.5", "/ro/nested/", "GET"),
        ],
    )
    assert [status for status, _, _ in seen] == [200, 200, 403, 200, 403, 200, 200]


REAL_IP = """
server {
    listen {listen} proxy_protocol;
    set_real_ip_from 127.0.0.0/8;
    real_ip_header proxy_protocol;
    deny 203.0.113.9;
    allow all;
    location / { proxy_pass http://127.0.0.1:{backend}; }
}
"""


async def _through_proxy_protocol(port: int, client: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"PROXY TCP4 {client} 127.0.0.1 5555 80\r\n".encode())
        writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        return int((await read_response(reader)).status.split()[1])
    finally:
        writer.close()


@pytest_twisted.ensureDeferred
async def test_the_address_checked_is_the_real_one(twins) -> None:
    sides = twins.start(REAL_IP)
    for client, expected in (("203.0.113.9", 403), ("203.0.113.10", 200)):
        statuses = {side.name: await aio(_through_proxy_protocol(side.port, client)) for side in sides}
        assert statuses == {"wstunnel": expected, "nginx": expected}, client


REMOTE_USER = """
log_format users '$remote_user|$status';
server {
    listen {listen};
    access_log {log} users;
    location / { proxy_pass http://127.0.0.1:{backend}; }
}
"""


@pytest_twisted.ensureDeferred
async def test_remote_user_is_the_basic_user_as_sent(twins) -> None:
    sides = twins.start(REMOTE_USER)
    headers = ["", basic("alice", "any"), "Authorization: Basic !!\r\n", basic("bob", "x:y")]
    for side in sides:
        for extra in headers:
            await aio(ask_from("127.0.0.2", side.port, "/", "GET", extra))
    logged = {side.name: await side.log.wait_for(len(headers)) for side in sides}
    assert logged["wstunnel"] == logged["nginx"] == ["-|200", "alice|200", "-|200", "bob|200"]
