"""add_header: which statuses get which entries, rendered values, and the config's inheritance."""

from __future__ import annotations

import pytest

from wstunnel.config.model import AddedHeader, Config, ConfigErrors, Server, Source
from wstunnel.config.loader import load_config
from wstunnel.config.templates import compile_template
from wstunnel.core.add_header import added_headers
from wstunnel.core.routing import parse_target
from wstunnel.core.variables import RequestVars
from wstunnel.wire.request import ConnInfo, RequestHead

SRC = Source("test.conf", 1)
SERVER = Server(("test.example",), (), (), SRC)
CONFIG = Config("test.conf", (), (SERVER,), {}, {}, ())
HEAD = RequestHead(b"GET", b"/a?b=1", b"1.1", ((b"Host", b"test.example"), (b"X-Token", b"t\r\nX: y")))


def rv() -> RequestVars:
    return RequestVars(
        config=CONFIG, server=SERVER, location=None, conn=ConnInfo("192.0.2.7", 40000, "192.0.2.1", 80),
        head=HEAD, target=parse_target(HEAD.target), host="test.example",
    )


def entry(name: str, value: str, always: bool = False) -> AddedHeader:
    return AddedHeader(name.encode(), compile_template(value, SRC, ()), always)


ENTRIES = (entry("X-Plain", "p-$uri"), entry("X-Always", "a", always=True))


@pytest.mark.parametrize("status", [200, 201, 204, 206, 301, 302, 303, 304, 307, 308])
def test_every_entry_on_the_listed_statuses(status) -> None:
    assert added_headers(ENTRIES, status, rv()) == [(b"X-Plain", b"p-/a"), (b"X-Always", b"a")]


@pytest.mark.parametrize("status", [101, 202, 300, 305, 400, 404, 500, 502])
def test_only_always_entries_on_other_statuses(status) -> None:
    assert added_headers(ENTRIES, status, rv()) == [(b"X-Always", b"a")]


def test_an_empty_value_adds_nothing() -> None:
    assert added_headers((entry("X-Empty", ""), entry("X-Var", "$http_x_missing")), 200, rv()) == []


def test_a_value_with_a_line_break_from_a_variable_is_never_written() -> None:
    assert added_headers((entry("X-Token", "$http_x_token"),), 200, rv()) == []


def load(tmp_path, body: str) -> Config:
    path = tmp_path / "test.conf"
    path.write_text(f"http {{ {body} }}\n")
    return load_config(str(path))


def names(entries) -> list[bytes]:
    return [e.name for e in entries]


def test_a_level_with_any_add_header_replaces_the_whole_list(tmp_path) -> None:
    config = load(tmp_path, """
        add_header X-Http h;
        server {
            listen 127.0.0.1:8080;
            add_header X-One 1;
            add_header X-Two 2 always;
            location /a/ { proxy_pass http://127.0.0.1:9; }
            location /b/ { add_header X-B b; proxy_pass http://127.0.0.1:9; }
        }
        server { listen 127.0.0.1:8081; location / { proxy_pass http://127.0.0.1:9; } }
    """)
    first, second = config.servers
    a, b = first.locations
    assert names(first.add_headers) == names(a.response.add_headers) == [b"X-One", b"X-Two"]
    assert [e.always for e in a.response.add_headers] == [False, True]
    assert names(b.response.add_headers) == [b"X-B"]
    assert names(second.add_headers) == names(second.locations[0].response.add_headers) == [b"X-Http"]


@pytest.mark.parametrize("line, message", [
    ("add_header X-A a sometimes;", 'invalid parameter "sometimes"'),
    ("add_header X:A a;", 'invalid header name "X:A"'),
    ("add_header X-A $nowhere;", 'unknown "nowhere" variable'),
    ("server_tokens maybe;", 'invalid value "maybe" in "server_tokens" directive'),
    ("server_tokens on; server_tokens off;", '"server_tokens" directive is duplicate'),
])
def test_bad_lines_fail_with_file_and_line(tmp_path, line, message) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, f"server {{ listen 127.0.0.1:8080; {line} }}")
    assert "test.conf:1: " in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize("value", ["on", "off", "build"])
def test_server_tokens_values_are_accepted(tmp_path, value) -> None:
    load(tmp_path, f"server_tokens {value}; server {{ listen 127.0.0.1:8080; server_tokens {value}; }}")
