"""proxy_upgrade_protocols: parsed, checked and inherited as nginx inherits a scalar."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config
from wstunnel.config.model import Location

CONF = """
    http {{
        {http}
        server {{
            listen 127.0.0.1:8080;
            {server}
            location /a/ {{ proxy_pass http://127.0.0.1:9000; {location} }}
            location /b/ {{ proxy_pass http://127.0.0.1:9000; }}
        }}
    }}
"""


def locations(tmp_path: Path, http: str = "", server: str = "", location: str = "") -> dict[str, Location]:
    path = write_config(tmp_path, CONF.format(http=http, server=server, location=location))
    config = load_config(path)
    return {loc.path: loc for loc in config.servers[0].locations}


def test_the_default_is_websocket(tmp_path: Path) -> None:
    assert locations(tmp_path)["/a/"].upgrade_protocols == {b"websocket"}


def test_values_are_kept_in_lower_case(tmp_path: Path) -> None:
    found = locations(tmp_path, location="proxy_upgrade_protocols WebSocket TCP SPDY/3.1;")
    assert found["/a/"].upgrade_protocols == {b"websocket", b"tcp", b"spdy/3.1"}


def test_a_level_replaces_the_inherited_list(tmp_path: Path) -> None:
    found = locations(
        tmp_path,
        http="proxy_upgrade_protocols websocket tcp;",
        server="proxy_upgrade_protocols websocket foo;",
        location="proxy_upgrade_protocols foo/2;",
    )
    assert found["/a/"].upgrade_protocols == {b"foo/2"}
    assert found["/b/"].upgrade_protocols == {b"websocket", b"foo"}


def test_http_reaches_every_location(tmp_path: Path) -> None:
    found = locations(tmp_path, http="proxy_upgrade_protocols websocket tcp;")
    assert found["/a/"].upgrade_protocols == found["/b/"].upgrade_protocols == {b"websocket", b"tcp"}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("proxy_upgrade_protocols h2c;", '"h2c" in "proxy_upgrade_protocols" directive: h2c is never tunnelled'),
        ("proxy_upgrade_protocols websocket H2C/1;", '"h2c" in "proxy_upgrade_protocols" directive: h2c is never tunnelled'),
        ("proxy_upgrade_protocols a/b/c;", 'invalid protocol "a/b/c" in "proxy_upgrade_protocols" directive'),
        ("proxy_upgrade_protocols foo/;", 'invalid protocol "foo/" in "proxy_upgrade_protocols" directive'),
        ("proxy_upgrade_protocols 'a b';", 'invalid protocol "a b" in "proxy_upgrade_protocols" directive'),
        ("proxy_upgrade_protocols;", 'invalid number of arguments in "proxy_upgrade_protocols" directive'),
        ("proxy_upgrade_protocols tcp; proxy_upgrade_protocols foo;", '"proxy_upgrade_protocols" directive is duplicate'),
    ],
)
def test_bad_values_name_file_and_line(tmp_path: Path, setting: str, message: str) -> None:
    text = CONF.format(http="", server="", location=setting)
    assert config_errors(tmp_path, text) == [f"FILE:6: {message}"]
