"""
Location selection by nginx's rules (ngx_http_core_find_location), on
configs loaded from text: exact, longest prefix, ``^~``, regexes in file
order, nested and named locations, and the captures a regex leaves.
"""

from __future__ import annotations

import pytest

from support import write_config
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config, Location, Server
from wstunnel.config.templates import compile_template
from wstunnel.core.routing import Redirect, Router, parse_target, upstream_target
from wstunnel.core.variables import RequestVars, render
from wstunnel.wire.request import ConnInfo, RequestHead

# The cases of nginx's http_location.t, plus nesting, ^~ and named locations.
CONF = """
server {
    listen 127.0.0.1:8080;
    location = / { proxy_pass http://127.0.0.1:9; }
    location / { proxy_pass http://127.0.0.1:9; }
    location ^~ /images/ { proxy_pass http://127.0.0.1:9; }
    location ~* \\.(gif|jpg|jpeg)$ { proxy_pass http://127.0.0.1:9; }
    location ~ casefull { proxy_pass http://127.0.0.1:9; }
    location = /foo { proxy_pass http://127.0.0.1:9; }
    location /foo { proxy_pass http://127.0.0.1:9; }
    location = /foo/ { proxy_pass http://127.0.0.1:9; }
    location /foo/ { proxy_pass http://127.0.0.1:9; }
    location /app/ {
        proxy_pass http://127.0.0.1:9;
        location ~ \\.php$ { proxy_pass http://127.0.0.1:9; }
        location /app/static/ {
            proxy_pass http://127.0.0.1:9;
            location ~ \\.css$ { proxy_pass http://127.0.0.1:9; }
        }
        location ^~ /app/raw/ { proxy_pass http://127.0.0.1:9; }
    }
    location ~ ^/re/(?<name>[a-z]+)/(\\d+) {
        proxy_pass http://127.0.0.1:9;
        location ~ /(x)$ { proxy_pass http://127.0.0.1:9; }
    }
    location ~ /pre/ {
        proxy_pass http://127.0.0.1:9;
        location /pre/y/ { proxy_pass http://127.0.0.1:9; }
    }
    location @fallback { proxy_pass http://127.0.0.1:9; }
    location /sub/ { proxy_pass http://127.0.0.1:9; }
}
"""


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    config = load_config(write_config(tmp_path_factory.mktemp("loc"), CONF))
    return Router(config), config.servers[0], config


def describe(found: Location | Redirect | None) -> str | None:
    """A location as written in CONF: modifier and path."""
    if found is None:
        return None
    if isinstance(found, Redirect):
        return f"301 {found.location.path}"
    modifier = "=" if found.exact else "^~" if found.noregex else "@" if found.named else ""
    if found.regex is not None:
        modifier = "~*" if found.regex.flags & 2 else "~"
    return f"{modifier} {found.path}".strip()


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("/", "= /"),
        ("/x", "/"),
        ("/images/t.gif", "^~ /images/"),
        ("/t.GIF", "~* \\.(gif|jpg|jpeg)$"),
        ("/casefull/t.gif", "~* \\.(gif|jpg|jpeg)$"),  # the first regex in file order wins
        ("/casefull/t", "~ casefull"),
        ("/CASEFULL/", "/"),  # "~" is case-sensitive
        ("/foo", "= /foo"),
        ("/foobar", "/foo"),
        ("/foo/", "= /foo/"),
        ("/foo/bar", "/foo/"),
        ("/app/x.php", "~ \\.php$"),  # nested regex
        ("/app/x", "/app/"),
        ("/app/static/a.css", "~ \\.css$"),  # regex nested two levels down
        ("/app/static/a.php", "~ \\.php$"),  # the parent's nested regexes after the inner ones
        ("/app/static/a", "/app/static/"),
        ("/app/raw/a.php", "^~ /app/raw/"),  # ^~ stops the nested regexes...
        ("/app/raw/a.gif", "~* \\.(gif|jpg|jpeg)$"),  # ...but not the server's
        ("/app/x.gif", "~* \\.(gif|jpg|jpeg)$"),  # the server's regexes after the nested ones
        ("/re/abc/12", "~ ^/re/(?<name>[a-z]+)/(\\d+)"),
        ("/re/abc/12/x", "~ /(x)$"),
        ("/re/abc/12/y", "~ ^/re/(?<name>[a-z]+)/(\\d+)"),
        ("/pre/y/z", "~ /pre/"),  # a prefix nested in a regex location is never chosen
        ("/pre/y", "~ /pre/"),
        ("/@fallback", "/"),  # a named location is never chosen by URI
        ("/sub", "301 /sub/"),
    ],
)
def test_selection(routed, uri: str, expected: str) -> None:
    router, server, _ = routed
    assert describe(router.find_location(server, uri)) == expected


def request_vars(config: Config, server: Server, location: Location, raw: str) -> RequestVars:
    head = RequestHead(b"GET", raw.encode(), b"1.1", ((b"Host", b"h"),))
    conn = ConnInfo("127.0.0.1", 1, "127.0.0.1", 8080, "http")
    return RequestVars(
        config=config, server=server, location=location, conn=conn, head=head,
        target=parse_target(raw.encode()), host="h",
    )


def captures(routed, raw: str, text: str) -> str:
    router, server, config = routed
    target = parse_target(raw.encode())
    found, matches = router.locate(server, target.uri)
    rv = request_vars(config, server, found, raw)
    for match in matches:
        rv.captured(match)
    return render(compile_template(text, found.source, {"name", *"123456789"}), rv)


def test_numbered_and_named_captures(routed) -> None:
    assert captures(routed, "/re/abc/12", "$1-$2-$name-$3") == "abc-12-abc-"


def test_a_nested_regex_replaces_numbered_captures_not_named_ones(routed) -> None:
    assert captures(routed, "/re/abc/12/x", "$1-$2-$name") == "x--abc"


def test_the_regex_location_keeps_its_captures_when_no_nested_one_matches(routed) -> None:
    assert captures(routed, "/re/abc/12/y", "$1-$2-$name") == "abc-12-abc"


def test_no_regex_no_captures(routed) -> None:
    router, server, _ = routed
    assert router.locate(server, "/foo/bar")[1] == ()
    assert captures(routed, "/foo/bar", "[$1$name]") == "[]"


def test_a_server_without_regexes_or_nesting_is_one_lookup(tmp_path) -> None:
    config = load_config(write_config(tmp_path, "server { location / { } location = /x { } location /a/ { } }"))
    server = config.servers[0]
    router = Router(config)
    assert router._locations[id(server)].plain
    assert describe(router.find_location(server, "/a/b")) == "/a/"


def test_capture_in_proxy_pass_is_the_whole_target(tmp_path) -> None:
    config = load_config(write_config(tmp_path, """
        server {
            location ~ ^/api/(?<rest>.*)$ { proxy_pass http://127.0.0.1:9/v2/$rest?from=$1; }
        }
    """))
    router, server = Router(config), config.servers[0]
    raw = "/api/a%20b/c?q=1"
    found, matches = router.locate(server, parse_target(raw.encode()).uri)
    rv = request_vars(config, server, found, raw)
    for match in matches:
        rv.captured(match)
    # The client's arguments are dropped, as in nginx; a decoded space is escaped, not sent raw.
    assert upstream_target(found, rv.target, rv) == b"/v2/a%20b/c?from=a%20b/c"
