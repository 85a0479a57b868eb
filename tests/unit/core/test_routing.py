"""Request-target parsing, Host, virtual servers, locations and proxy_pass URIs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstunnel.wire.errors import RequestError
from wstunnel.config.model import (
    Binding,
    Config,
    Location,
    Peer,
    ProxyPass,
    Server,
    Source,
    Timeouts,
    Upstream,
)
from wstunnel.wire.request import ConnInfo, RequestHead, Target
from wstunnel.core.routing import (
    Redirect,
    Router,
    escape_path,
    parse_target,
    redirect_url,
    request_host,
    upstream_target,
)

SRC = Source("test.conf", 1)
BACKEND = Upstream("backend", (Peer("127.0.0.1", 8000, "127.0.0.1:8000"),), False, SRC)


def proxy(uri: str | None = None) -> ProxyPass:
    return ProxyPass("http", BACKEND, uri, "backend", SRC)


def location(path: str, *, exact: bool = False, uri: str | None = None, proxied: bool = True) -> Location:
    return Location(
        path=path,
        exact=exact,
        proxy_pass=proxy(uri) if proxied else None,
        http_version="1.1",
        set_headers=(),
        timeouts=Timeouts(),
        access_logs=(),
        source=SRC,
    )


def server(*names: str, locations: tuple[Location, ...] = ()) -> Server:
    return Server(names=names or ("",), listens=(), locations=locations, source=SRC)


def config(*bindings: Binding) -> Config:
    servers = tuple(s for b in bindings for s in b.servers)
    return Config("test.conf", bindings, servers, {}, {}, ())


def head(*headers: tuple[bytes, bytes], version: bytes = b"1.1", target: bytes = b"/") -> RequestHead:
    return RequestHead(b"GET", target, version, headers)


# parse_target


def test_origin_form() -> None:
    assert parse_target(b"/a/b?x=1&y=%2F") == Target(
        path="/a/b", args="x=1&y=%2F", uri="/a/b", request_uri="/a/b?x=1&y=%2F"
    )


def test_empty_query_keeps_the_question_mark_in_request_uri_only() -> None:
    target = parse_target(b"/a?")
    assert (target.args, target.request_uri) == ("", "/a?")


def test_fragment_is_dropped() -> None:
    target = parse_target(b"/a/b?q=1#frag?x")
    assert (target.uri, target.args, target.request_uri) == ("/a/b", "q=1", "/a/b?q=1")


def test_absolute_form_takes_the_host_and_keeps_path_and_query() -> None:
    target = parse_target(b"http://Example.COM:8080/p/../q?x")
    assert target == Target(path="/p/../q", args="x", uri="/q", request_uri="/p/../q?x", host="example.com")


@pytest.mark.parametrize(
    ("raw", "request_uri"),
    [(b"http://h", "/"), (b"HTTPS://h?x=1", "/?x=1"), (b"http://h:80", "/")],
)
def test_absolute_form_path_defaults_to_root(raw: bytes, request_uri: str) -> None:
    target = parse_target(raw)
    assert (target.uri, target.request_uri, target.host) == ("/", request_uri, "h")


@pytest.mark.parametrize(
    "raw",
    [
        b"*",
        b"a/b",
        b"ftp://h/",
        b"http:/h/",
        b"http://user@h/",
        b"http:///x",
        b"http://h:99999/",
        b"http://h..x/",
        b"/a b",
        b"/a\tb",
        b"/a\x00b",
        b"/a\x7fb",
        b"/a\x01",
        "/é".encode(),
        b"/a%",
        b"/a%4",
        b"/a%zz",
        b"/a%4g",
        b"/a%00b",
        b"/..",
        b"/a/../..",
        b"/%2e%2e/x",
        b"/a/%2E%2E/%2e%2e",
        b"",
    ],
)
def test_bad_targets_are_400(raw: bytes) -> None:
    with pytest.raises(RequestError) as info:
        parse_target(raw)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("raw", "uri"),
    [
        (b"/", "/"),
        (b"/%41%62c", "/Abc"),
        (b"/a%2Fb", "/a/b"),
        (b"/a%20b%25", "/a b%"),
        (b"/a%0d%0aX", "/a\r\nX"),
        (b"/%C3%A9", "/\xc3\xa9"),
        (b"/a/./b", "/a/b"),
        (b"/a/b/../c", "/a/c"),
        (b"/a/..", "/"),
        (b"/a/b/..", "/a/"),
        (b"/a/b/.", "/a/b/"),
        (b"/a/.", "/a/"),
        (b"/.", "/"),
        (b"//a///b//", "/a/b/"),
        (b"/a//../b", "/b"),
        (b"/a/%2e/b", "/a/b"),
        (b"/a/%2e%2e/b", "/b"),
        (b"/.../..a/a..", "/.../..a/a.."),
        (b"/.hidden/.x", "/.hidden/.x"),
    ],
)
def test_uri_normalisation(raw: bytes, uri: str) -> None:
    assert parse_target(raw).uri == uri


def test_path_and_request_uri_keep_the_raw_bytes() -> None:
    target = parse_target(b"/a/x%20y/../z?q=1&r=%2F")
    assert (target.path, target.request_uri, target.uri) == (
        "/a/x%20y/../z",
        "/a/x%20y/../z?q=1&r=%2F",
        "/a/z",
    )


@given(st.binary(max_size=40))
def test_parse_target_raises_only_request_errors(raw: bytes) -> None:
    try:
        parse_target(raw)
    except RequestError as e:
        assert e.status == 400


_PATH_PIECES = st.sampled_from(["/", "//", ".", "..", "a", "%2e", "%2F", "%25", "%20", "%0A", "%C3%A9", "?", "#", "b"])


@given(st.lists(_PATH_PIECES, max_size=12).map(lambda parts: "/" + "".join(parts)))
def test_normalisation_is_idempotent(path: str) -> None:
    try:
        uri = parse_target(path.encode()).uri
    except RequestError:
        return
    assert parse_target(escape_path(uri).encode()).uri == uri


# request_host


@pytest.mark.parametrize(
    ("value", "host"),
    [
        (b"Example.COM", "example.com"),
        (b"Ex.COM.:99", "ex.com"),
        (b"abcd-ef.g02.xyz:", "abcd-ef.g02.xyz"),
        (b"localhost:65535", "localhost"),
        (b"127.0.0.1:8080", "127.0.0.1"),
        (b"[::1]:8080", "[::1]"),
        (b"[2001:DB8::1]", "[2001:db8::1]"),
        (b"[v1.Fe:x]", "[v1.fe:x]"),
        (b"under_score.example", "under_score.example"),
    ],
)
def test_host_header_normalisation(value: bytes, host: str) -> None:
    assert request_host(head((b"Host", value)), parse_target(b"/")) == host


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b".",
        b":80",
        b"a..b",
        b"a..",
        b"..",
        b"a/b",
        b"a\\b",
        b"a b",
        b"a\x01b",
        b"a@b",
        b"a%41",
        b"a:b",
        b"a:80:80",
        b"a:65536",
        b"a:123456",
        b"a:-1",
        b"[::1",
        b"[::1]x",
        b"[::g]",
        b"[fe80::1%25eth0]",
        b"[]",
        "é.example".encode(),
    ],
)
def test_invalid_hosts_are_400(value: bytes) -> None:
    with pytest.raises(RequestError) as info:
        request_host(head((b"Host", value)), parse_target(b"/"))
    assert info.value.status == 400


def test_duplicate_host_is_400() -> None:
    with pytest.raises(RequestError, match="duplicate"):
        request_host(head((b"Host", b"a"), (b"host", b"a")), parse_target(b"/"))


def test_http11_without_host_is_400() -> None:
    with pytest.raises(RequestError) as info:
        request_host(head(), parse_target(b"http://a/"))
    assert info.value.status == 400


def test_http10_without_host_has_none() -> None:
    assert request_host(head(version=b"1.0"), parse_target(b"/")) is None


def test_http10_absolute_form_without_host_uses_the_target() -> None:
    assert request_host(head(version=b"1.0"), parse_target(b"http://A.b/")) == "a.b"


def test_absolute_form_host_wins_over_the_host_header() -> None:
    assert request_host(head((b"Host", b"public.example")), parse_target(b"http://internal/")) == "internal"


def test_host_header_is_validated_even_when_absolute_form_wins() -> None:
    with pytest.raises(RequestError):
        request_host(head((b"Host", b"a/b")), parse_target(b"http://internal/"))


# select_server

EXACT = server("Www.Example.com", "alias.example.com")
WILD = server("*.example.com")
DEEP = server("*.pref.example.com")
NO_NAME = server("")
FIRST = server("first")
BINDING = Binding("0.0.0.0", 80, FIRST, (FIRST, EXACT, WILD, DEEP, NO_NAME))
ROUTER = Router(config(BINDING))


@pytest.mark.parametrize(
    ("host", "chosen"),
    [
        ("www.example.com", EXACT),
        ("alias.example.com", EXACT),
        ("x.example.com", WILD),
        ("a.b.example.com", WILD),
        ("x.pref.example.com", DEEP),
        ("pref.example.com", WILD),
        ("example.com", FIRST),
        ("unknown", FIRST),
        (None, NO_NAME),
    ],
)
def test_select_server(host: str | None, chosen: Server) -> None:
    assert ROUTER.select_server(BINDING, host) is chosen


def test_missing_host_without_an_unnamed_server_selects_the_default() -> None:
    named = server("a")
    default = server("b")
    binding = Binding("0.0.0.0", 80, default, (named, default))
    assert Router(config(binding)).select_server(binding, None) is default


def test_the_first_server_with_a_name_wins() -> None:
    one, two = server("same"), server("SAME")
    binding = Binding("0.0.0.0", 80, two, (one, two))
    assert Router(config(binding)).select_server(binding, "same") is one


def test_a_binding_from_another_config_is_still_routed() -> None:
    assert Router(config()).select_server(BINDING, "x.example.com") is WILD


# find_location

ROOT = location("/")
A_DIR = location("/a/", uri="/app/")
A_DASH = location("/a-a")
A_DASH_B = location("/a-b")
EXACT_FOO = location("/foo", exact=True)
PREFIX_FOO = location("/foo")
EXACT_FOO_DIR = location("/foo/", exact=True)
PREFIX_FOO_DIR = location("/foo/")
STATIC_DIR = location("/static/", proxied=False)
SITE = server(
    "site",
    locations=(ROOT, A_DASH, A_DIR, A_DASH_B, EXACT_FOO, PREFIX_FOO, EXACT_FOO_DIR, PREFIX_FOO_DIR, STATIC_DIR),
)
SITE_ROUTER = Router(config(Binding("0.0.0.0", 80, SITE, (SITE,))))


@pytest.mark.parametrize(
    ("uri", "found"),
    [
        ("/", ROOT),
        ("/x", ROOT),
        ("/a/", A_DIR),
        ("/a/b/c", A_DIR),
        ("/a-a", A_DASH),
        ("/a-b/x", A_DASH_B),
        ("/a-", ROOT),
        ("/foo", EXACT_FOO),
        ("/foobar", PREFIX_FOO),
        ("/foo/", EXACT_FOO_DIR),
        ("/foo/bar", PREFIX_FOO_DIR),
        ("/static", ROOT),
        ("/static/x", STATIC_DIR),
    ],
)
def test_find_location(uri: str, found: Location) -> None:
    assert SITE_ROUTER.find_location(SITE, uri) is found


def test_slashless_prefix_redirects_even_with_a_root_location() -> None:
    assert SITE_ROUTER.find_location(SITE, "/a") == Redirect(A_DIR)


def test_exact_slash_location_with_proxy_pass_redirects_too() -> None:
    only = location("/ws/", exact=True)
    site = server(locations=(only,))
    assert Router(config(Binding("::", 80, site, (site,)))).find_location(site, "/ws") == Redirect(only)


def test_a_prefix_location_equal_to_the_uri_prevents_the_redirect() -> None:
    bare, slashed = location("/chat"), location("/chat/")
    site = server(locations=(slashed, bare))
    assert Router(config(Binding("::", 80, site, (site,)))).find_location(site, "/chat") is bare


def test_no_location_is_none() -> None:
    site = server(locations=(location("/chat/"),))
    router = Router(config(Binding("::", 80, site, (site,))))
    assert router.find_location(site, "/other") is None
    assert router.find_location(site, "/cha") is None


def test_a_server_from_another_config_is_still_matched() -> None:
    assert Router(config()).find_location(SITE, "/a") == Redirect(A_DIR)


def test_the_first_of_duplicate_locations_wins() -> None:
    one, two = location("/d/"), location("/d/")
    site = server(locations=(one, two))
    router = Router(config(Binding("::", 80, site, (site,))))
    assert router.find_location(site, "/d/") is one
    found = router.find_location(site, "/d")
    assert isinstance(found, Redirect) and found.location is one


# redirect_url

CONN = ConnInfo("10.0.0.1", 5555, "10.0.0.2", 18090)


def test_redirect_url_uses_host_and_the_real_port() -> None:
    target = parse_target(b"/a")
    assert redirect_url(target, CONN, "ex.com") == "http://ex.com:18090/a/"


@pytest.mark.parametrize(
    ("scheme", "port", "url"),
    [
        ("http", 80, "http://h/a/?x=1"),
        ("https", 443, "https://h/a/?x=1"),
        ("https", 80, "https://h:80/a/?x=1"),
        ("http", 443, "http://h:443/a/?x=1"),
    ],
)
def test_redirect_url_omits_the_default_port(scheme: str, port: int, url: str) -> None:
    conn = ConnInfo("10.0.0.1", 5555, "10.0.0.2", port, scheme)
    assert redirect_url(parse_target(b"/a?x=1"), conn, "h") == url


def test_redirect_url_escapes_what_decoding_revealed() -> None:
    target = parse_target(b"/a%0d%0aSet-Cookie:%20x%3F")
    assert redirect_url(target, CONN, "h") == "http://h:18090/a%0D%0ASet-Cookie:%20x%3F/"


# upstream_target: each applicable row of the nginx-behaviour 4.6 table.
# The regex-location and proxy_pass-with-variables rows have no counterpart
# in the model: wstunnel has neither.


@pytest.mark.parametrize(
    ("path", "uri", "raw", "sent"),
    [
        ("/a/", None, b"/a/x%20y/../z?q=1&r=%2F", b"/a/x%20y/../z?q=1&r=%2F"),
        ("/b/", "/", b"/b/x?q=1", b"/x?q=1"),
        ("/c/", "/app/", b"/c/x%2Fy?q", b"/app/x/y?q"),
        ("/c/", "/app/", b"/c//x", b"/app/x"),
        ("/d", "/app", b"/dnext/x", b"/appnext/x"),
        ("/e/", "/app", b"/e/x", b"/appx"),
    ],
)
def test_proxy_pass_uri_table(path: str, uri: str | None, raw: bytes, sent: bytes) -> None:
    assert upstream_target(location(path, uri=uri), parse_target(raw)) == sent


def test_without_uri_part_absolute_form_sends_path_and_query() -> None:
    assert upstream_target(location("/"), parse_target(b"http://h/p/../q?x")) == b"/p/../q?x"


def test_exact_location_replaces_the_whole_uri() -> None:
    assert upstream_target(location("/ws", exact=True, uri="/socket"), parse_target(b"/ws?t=1")) == b"/socket?t=1"


def test_rest_is_re_escaped_when_the_client_escaped() -> None:
    target = parse_target(b"/c/a%20b%25c%3Fd%23e%0A%C3%A9/f")
    assert upstream_target(location("/c/", uri="/app/"), target) == b"/app/a%20b%25c%3Fd%23e%0A%C3%A9/f"


def test_rest_is_left_alone_without_escapes() -> None:
    target = parse_target(b"/c/a/./b;x=1,y'z")
    assert upstream_target(location("/c/", uri="/"), target) == b"/a/b;x=1,y'z"


def test_empty_args_are_not_sent() -> None:
    assert upstream_target(location("/c/", uri="/"), parse_target(b"/c/x?")) == b"/x"


def test_upstream_target_needs_proxy_pass() -> None:
    with pytest.raises(ValueError, match="no proxy_pass"):
        upstream_target(location("/", proxied=False), parse_target(b"/"))
