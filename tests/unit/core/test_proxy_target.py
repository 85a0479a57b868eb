"""
The per-request choice of a ``proxy_pass`` with variables (sans-IO): how a
rendered host[:port] is read, which group it names, and ``$proxy_host``,
as nginx's ngx_http_upstream_init_request and ngx_http_proxy_eval do.
"""

from __future__ import annotations

import pytest

from wstunnel.config.model import Source, Upstream
from wstunnel.core.proxy_target import choose, rendered_proxy_host, split_authority
from wstunnel.wire.errors import RequestError

POOL = Upstream("Pool", (), False, Source("t.conf", 1))
IMPLICIT = Upstream("app.test:8080", (), True, Source("t.conf", 2))
NAMED = {"pool": POOL}
GROUPS = {("app.test", 8080): IMPLICIT}


@pytest.mark.parametrize(
    "text, scheme, expected",
    [
        ("a.test", "http", ("a.test", 80, False)),
        ("a.test", "https", ("a.test", 443, False)),
        ("a.test:81", "http", ("a.test", 81, True)),
        ("[::1]", "http", ("::1", 80, False)),
        ("[::1]:8080", "http", ("::1", 8080, True)),
        ("10.0.0.1:80", "http", ("10.0.0.1", 80, True)),
    ],
)
def test_split_authority(text, scheme, expected) -> None:
    assert split_authority(text, scheme) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", 'no host in upstream ""'),
        (":80", 'no host in upstream ":80"'),
        ("a:0", 'invalid port in upstream "a:0"'),
        ("a:", 'invalid port in upstream "a:"'),
        ("a:65536", 'invalid port in upstream "a:65536"'),
        ("[zz]:80", 'invalid IPv6 address in upstream "[zz]:80"'),
        ("[::1]x", 'invalid IPv6 address in upstream "[::1]x"'),
        ("a/b", 'invalid host in upstream "a/b"'),
        ("a b", 'invalid host in upstream "a b"'),
    ],
)
def test_a_value_that_is_no_authority_is_a_500(text, message) -> None:
    with pytest.raises(RequestError) as caught:
        split_authority(text, "http")
    assert (caught.value.status, caught.value.detail) == (500, message)


def test_an_upstream_block_is_named_without_a_port_in_any_case() -> None:
    assert choose("POOL", "http", NAMED, GROUPS).upstream is POOL
    assert choose("pool:80", "http", NAMED, GROUPS).upstream is None


def test_a_plain_proxy_pass_group_is_named_by_host_and_port() -> None:
    assert choose("App.Test:8080", "http", NAMED, GROUPS).upstream is IMPLICIT
    assert choose("app.test", "http", NAMED, GROUPS).upstream is None


def test_otherwise_an_address_is_literal_and_a_name_is_not() -> None:
    assert choose("10.0.0.1:81", "http", NAMED, GROUPS) == (None, "10.0.0.1", 81, True)
    assert choose("[::1]", "http", NAMED, GROUPS) == (None, "::1", 80, True)
    assert choose("other.test", "http", NAMED, GROUPS) == (None, "other.test", 80, False)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a.test", "a.test"),
        ("a.test:80", "a.test"),
        ("a.test:81", "a.test:81"),
        ("[::1]:81", "[::1]:81"),
        ("a/b", "a/b"),
    ],
)
def test_proxy_host_shows_the_port_unless_it_is_the_default(text, expected) -> None:
    assert rendered_proxy_host(text, "http") == expected
