"""Addresses as nginx writes them: host:port, [v6]:port, listen addresses, proxy_pass URLs."""

from __future__ import annotations

import pytest

from wstunnel.config.addresses import (
    format_address,
    is_ip,
    listen_addresses,
    parse_proxy_url,
    split_host_port,
)
from wstunnel.config.model import ConfigError, Source

SRC = Source("t.conf", 2)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("example.com", ("example.com", 80)),
        ("example.com:8080", ("example.com", 8080)),
        ("[::1]", ("::1", 80)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text, 80) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("::1", 'IPv6 address in "::1" must be written in brackets'),
        ("[nope]:80", 'invalid IPv6 address in "[nope]:80"'),
        ("host:0", 'invalid port in "host:0"'),
        (":80", 'no host in ":80"'),
    ],
)
def test_split_host_port_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        split_host_port(text, 80)


@pytest.mark.parametrize("host, ip", [("127.0.0.1", True), ("::1", True), ("[::1]", False), ("localhost", False)])
def test_is_ip(host: str, ip: bool) -> None:
    assert is_ip(host) is ip


def test_format_address_brackets_v6() -> None:
    assert (format_address("::1", 80), format_address("127.0.0.1", 80)) == ("[::1]:80", "127.0.0.1:80")


def test_listen_resolves_names_only() -> None:
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1", "127.0.0.2"]

    assert listen_addresses("8080", SRC, resolve) == [("0.0.0.0", 8080)]
    assert listen_addresses("*:0", SRC, resolve) == [("0.0.0.0", 0)]
    assert listen_addresses("[::1]:443", SRC, resolve) == [("::1", 443)]
    assert listen_addresses("site.test:81", SRC, resolve) == [("127.0.0.1", 81), ("127.0.0.2", 81)]
    assert asked == [("site.test", 81)]


def test_listen_host_not_found_is_located() -> None:
    def resolve(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(ConfigError) as caught:
        listen_addresses("nowhere.test", SRC, resolve)
    assert str(caught.value) == 't.conf:2: host not found in "nowhere.test" of the "listen" directive'


def test_proxy_url_parts() -> None:
    url = parse_proxy_url("HTTPS://[::1]:8443/app/?x=1", SRC)
    assert (url.scheme, url.authority, url.host, url.port, url.uri) == ("https", "[::1]:8443", "::1", 8443, "/app/?x=1")
    bare = parse_proxy_url("http://backend", SRC)
    assert (bare.host, bare.port, bare.uri) == ("backend", None, None)


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://x", 'invalid URL prefix in "ftp://x"'),
        ("http://$host", 'variables in "proxy_pass" are not supported by wstunnel'),
        ("http://unix:/tmp/s", "unix domain sockets are not supported by wstunnel"),
        ("http://u@h", 'user information in "http://u@h" is not supported'),
    ],
)
def test_proxy_url_refusals(url: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_proxy_url(url, SRC)
    assert str(caught.value) == message
