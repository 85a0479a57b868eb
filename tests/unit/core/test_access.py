"""core.access through core.dispatch.prepare: allow/deny, auth_basic, satisfy and limit_except as decisions."""

from __future__ import annotations

import base64
import errno
from pathlib import Path

import pytest

from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.core.dispatch import Decision, Forward, Refuse, Respond, prepare
from wstunnel.core.headers import header_plan
from wstunnel.core.htpasswd import UserTable, parse_users
from wstunnel.core.routing import Router
from wstunnel.wire.request import ConnInfo, RequestHead

CONF = """
server {
    listen 127.0.0.1:8080;
    allow 127.0.0.2;
    allow 10.0.0.0/8;
    allow 2001:db8::/32;
    deny all;
    location /open/ { allow all; proxy_pass http://127.0.0.1:9001; }
    location /inherit/ { proxy_pass http://127.0.0.1:9001; }
    location /pw/ {
        allow all;
        auth_basic "Zone $host";
        auth_basic_user_file users;
        proxy_pass http://127.0.0.1:9001;
        location /pw/off/ { auth_basic off; proxy_pass http://127.0.0.1:9001; }
    }
    location /any/ {
        satisfy any;
        auth_basic "any";
        auth_basic_user_file users;
        proxy_pass http://127.0.0.1:9001;
    }
    location /missing/ {
        allow all;
        auth_basic "m";
        auth_basic_user_file nothere;
        proxy_pass http://127.0.0.1:9001;
    }
    location /ro/ {
        allow all;
        limit_except GET { deny all; }
        proxy_pass http://127.0.0.1:9001;
        location /ro/nested/ { proxy_pass http://127.0.0.1:9001; }
    }
    location /first/ { deny 127.0.0.5; allow 127.0.0.0/8; deny all; proxy_pass http://127.0.0.1:9001; }
    location /ret/ { return 204; }
}
"""
USERS = parse_users(b"alice:{PLAIN}secret\n")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path: Path = tmp_path_factory.mktemp("access") / "proxy.conf"
    path.write_text(CONF)
    return load_config(str(path), resolve=lambda host, port: [host])


def read_users(path: str) -> UserTable | OSError:
    if path.endswith("/users"):
        return USERS
    return OSError(errno.ENOENT, "No such file or directory")


def decide(config: Config, target: bytes, client: str = "127.0.0.2", method: bytes = b"GET", *headers) -> Decision:
    head = RequestHead(method, target, b"1.1", ((b"Host", b"a.test"), *headers))
    return prepare(
        config=config,
        router=Router(config),
        binding=config.bindings[0],
        conn=ConnInfo(remote_addr=client, remote_port=40000, server_addr="127.0.0.1", server_port=8080),
        tls=None,
        head=head,
        pooled=(),
        plans=lambda location: header_plan(location, config),
        users=read_users,
    )


def status(decision: Decision) -> int:
    if isinstance(decision, Forward):
        return 0
    if isinstance(decision, Refuse):
        return decision.error.status
    assert isinstance(decision, Respond)
    return decision.status


def basic(user: bytes, password: bytes) -> tuple[bytes, bytes]:
    return (b"Authorization", b"Basic " + base64.b64encode(user + b":" + password))


@pytest.mark.parametrize(
    "client, path, expected",
    [
        ("127.0.0.2", "/inherit/", 0),
        ("127.0.0.5", "/inherit/", 403),
        ("10.1.2.3", "/inherit/", 0),
        ("2001:db8::7", "/inherit/", 0),
        ("::1", "/inherit/", 403),
        ("::ffff:10.0.0.1", "/inherit/", 0),
        ("127.0.0.5", "/open/", 0),
        ("127.0.0.5", "/nolocation", 403),
        ("127.0.0.2", "/nolocation", 404),
        ("127.0.0.5", "/first/", 403),
        ("127.0.0.6", "/first/", 0),
        ("192.0.2.1", "/first/", 403),
        ("127.0.0.5", "/ret/", 204),
    ],
)
def test_first_matching_rule_of_the_clients_family_decides(config: Config, client: str, path: str, expected: int) -> None:
    assert status(decide(config, path.encode(), client)) == expected


def test_a_denial_is_a_403_refusal_in_its_location(config: Config) -> None:
    decision = decide(config, b"/inherit/x", "127.0.0.5")
    assert isinstance(decision, Refuse)
    assert decision.location is not None and decision.location.path == "/inherit/"
    assert decision.error.detail == "access forbidden by rule"


def test_basic_auth_asks_with_the_realm(config: Config) -> None:
    decision = decide(config, b"/pw/")
    assert isinstance(decision, Respond) and decision.status == 401
    assert dict(decision.headers)[b"WWW-Authenticate"] == b'Basic realm="Zone a.test"'


@pytest.mark.parametrize(
    "header, expected",
    [
        (basic(b"alice", b"secret"), 0),
        (basic(b"alice", b"wrong"), 401),
        (basic(b"bob", b"secret"), 401),
        ((b"Authorization", b"Basic !!"), 401),
        ((b"Authorization", b"Digest x"), 401),
        ((b"Authorization", b""), 401),
    ],
)
def test_basic_auth_checks_the_user_file(config: Config, header: tuple[bytes, bytes], expected: int) -> None:
    assert status(decide(config, b"/pw/", "127.0.0.2", b"GET", header)) == expected


def test_auth_basic_off_in_a_nested_location(config: Config) -> None:
    assert status(decide(config, b"/pw/off/", "127.0.0.5")) == 0


def test_a_missing_user_file_is_403(config: Config) -> None:
    assert status(decide(config, b"/missing/", "127.0.0.2", b"GET", basic(b"alice", b"secret"))) == 403


@pytest.mark.parametrize(
    "client, header, expected",
    [
        ("127.0.0.2", None, 0),
        ("127.0.0.5", None, 401),
        ("127.0.0.5", basic(b"alice", b"secret"), 0),
        ("127.0.0.5", basic(b"alice", b"nope"), 401),
    ],
)
def test_satisfy_any(config: Config, client: str, header: tuple[bytes, bytes] | None, expected: int) -> None:
    headers = () if header is None else (header,)
    assert status(decide(config, b"/any/", client, b"GET", *headers)) == expected


@pytest.mark.parametrize(
    "method, path, expected",
    [
        (b"GET", "/ro/", 0),
        (b"HEAD", "/ro/", 0),
        (b"POST", "/ro/", 403),
        (b"FOO", "/ro/", 403),
        (b"DELETE", "/ro/nested/", 0),
        (b"GET", "/ro/nested/", 0),
    ],
)
def test_limit_except(config: Config, method: bytes, path: str, expected: int) -> None:
    assert status(decide(config, path.encode(), "127.0.0.2", method)) == expected
