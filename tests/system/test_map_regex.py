"""
``map`` with regex keys, captures, ``hostnames``, ``volatile`` and
``include``: loading and per-request evaluation without Twisted, then one
config run through real nginx and wstunnel, comparing what the upstream
receives.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from nginx_support import ask_both, request
from support import config_errors, write_config
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.config.templates import compile_template
from wstunnel.core.variables import RequestVars, render
from wstunnel.wire.request import ConnInfo, RequestHead, Target

SERVER = """
server {
    listen 127.0.0.1:8080;
    location / {
        proxy_pass http://127.0.0.1:8000;
        proxy_set_header X $m;
    }
}
"""


def load(tmp_path, maps: str) -> Config:
    return load_config(write_config(tmp_path, maps + SERVER))


def variables(config: Config, uri: str = "/", host: str = "localhost", headers=()) -> RequestVars:
    head = RequestHead(b"GET", uri.encode(), b"1.1", tuple(headers))
    return RequestVars(
        config=config,
        server=config.servers[0],
        location=None,
        conn=ConnInfo("127.0.0.1", 40000, "127.0.0.1", 8080, "http"),
        head=head,
        target=Target(path=uri, args="", uri=uri, request_uri=uri),
        host=host,
    )


def value(config: Config, text: str, **request) -> str:
    """``text`` rendered for one request, as a directive value would be."""
    names = set(config.maps) | {"1", "2", "name", "word", "x"}
    return render(compile_template(text, config.servers[0].source, names), variables(config, **request))


def uri_values(config: Config, uris: list[str], text: str = "$m") -> list[str]:
    return [value(config, text, uri=uri) for uri in uris]


# ---------------------------------------------------------------- lookup order


def test_exact_keys_then_regexes_in_file_order_then_default(tmp_path) -> None:
    config = load(tmp_path, r"""
map $uri $m {
    default      none;
    /exact       exact;
    ~^/a         first;
    ~^/ab        second;
    ~^/exact     regex;
    ~*^/CASE     caseless;
    ~^/Case      sensitive;
}
""")
    assert uri_values(config, ["/exact", "/EXACT", "/abc", "/case", "/Case", "/CASE", "/zz"]) == [
        "exact", "exact", "first", "caseless", "caseless", "caseless", "none"]


def test_an_empty_source_is_never_tried_against_a_regex(tmp_path) -> None:
    config = load(tmp_path, "map $http_x $m {\n default d;\n ~^$ empty;\n}\n")
    assert value(config, "$m") == "d"


def test_numbered_and_named_captures_in_the_value(tmp_path) -> None:
    config = load(tmp_path, r"""
map $uri $m {
    ~^/u/([0-9]+)/(?<name>[a-z]+)   $1-$name-$2;
    ~^/p/(?P<word>[a-z]+)$          p:$word;
}
""")
    assert uri_values(config, ["/u/12/bob", "/p/abc", "/p/ABC"]) == ["12-bob-bob", "p:abc", ""]


def test_captures_are_the_requests_after_the_map_is_evaluated(tmp_path) -> None:
    config = load(tmp_path, r"""
map $uri $m {
    ~^/(?<name>[a-z]+)/(.*)$   hit;
}
map $uri $plain {
    ~^/[a-z]+/     nogroups;
}
""")
    assert value(config, "[$name][$1]", uri="/abc/def") == "[][]"
    assert value(config, "$m [$name][$1][$2]", uri="/abc/def") == "hit [abc][abc][def]"
    # a regex without groups leaves $1 as it was, as nginx's ngx_http_regex_exec does
    assert value(config, "$m $plain [$1]", uri="/abc/def") == "hit nogroups [abc]"


def test_a_map_result_is_kept_for_the_request_unless_volatile(tmp_path) -> None:
    maps = r"""
map $uri $m {
    ~^/(?<x>[a-z]+)   set;
}
map $x $seen {
    %s
    default [$x];
}
"""
    kept = load(tmp_path, maps % "")
    assert value(kept, "$seen $m $seen", uri="/abc") == "[] set []"
    volatile = load(tmp_path, maps % "volatile;")
    assert volatile.maps["seen"].volatile
    assert value(volatile, "$seen $m $seen", uri="/abc") == "[] set [abc]"


def test_backslash_keeps_a_key_literal(tmp_path) -> None:
    config = load(tmp_path, "map $uri $m {\n \\~/x tilde;\n \\default word;\n default d;\n}\n")
    assert uri_values(config, ["~/x", "default", "/x"]) == ["tilde", "word", "d"]


def test_include_inside_a_map(tmp_path) -> None:
    write_config(tmp_path, "~^/inc/(.+)$ inc-$1;\n/plain plain;\n", "keys.map")
    config = load(tmp_path, "map $uri $m {\n default d;\n include keys.map;\n}\n")
    assert uri_values(config, ["/inc/x", "/plain", "/other"]) == ["inc-x", "plain", "d"]


# ---------------------------------------------------------------- hostnames


HOSTNAMES = r"""
map $host $m {
    hostnames;
    default            none;
    example.com        exact;
    *.example.com      star;
    *.a.example.com    deeper;
    .example.org       dotted;
    www.example.*      tail;
    www.*              www;
    ~^(?<name>[a-z]+)\.test$   re-$name;
}
"""


@pytest.mark.parametrize(
    "host, expected",
    [
        ("example.com", "exact"),
        ("EXAMPLE.COM.", "exact"),  # one trailing dot is ignored under hostnames
        ("b.example.com", "star"),
        ("x.y.example.com", "star"),
        ("b.a.example.com", "deeper"),
        ("a.example.com", "star"),
        ("example.org", "dotted"),
        ("x.example.org", "dotted"),
        ("www.example.net", "tail"),
        ("www.example.co.uk", "tail"),
        ("www.example", "www"),
        ("www.other.net", "www"),
        ("www.example.com", "star"),  # head wildcards come before tail ones
        ("foo.test", "re-foo"),
        ("example.com..", "none"),
        ("", "none"),
    ],
)
def test_hostnames_order_and_longest_wildcard(tmp_path, host, expected) -> None:
    config = load(tmp_path, HOSTNAMES)
    assert value(config, "$m", host=host) == expected


def test_without_hostnames_wildcards_are_plain_keys(tmp_path) -> None:
    config = load(tmp_path, "map $host $m {\n *.example.com star;\n default d;\n}\n")
    assert [value(config, "$m", host=h) for h in ("*.example.com", "a.example.com")] == ["star", "d"]


@pytest.mark.parametrize(
    "entries, message",
    [
        ("hostnames;\n www.*.com x;", 'invalid hostname or wildcard "www.*.com"'),
        ("hostnames;\n a..b x;", 'invalid hostname or wildcard "a..b"'),
        ("hostnames;\n *.*.b x;", 'invalid hostname or wildcard "*.*.b"'),
        ("hostnames;\n .A.com x;\n *.a.COM y;", 'conflicting parameter "*.a.com"'),
        ("hostnames;\n A.com x;\n .a.COM y;", 'conflicting parameter ".a.com"'),
        ("hostnames;\n .a.com x;\n A.com y;", 'conflicting parameter "a.com"'),
        ("hostnames;\n w.* x;\n W.* y;", 'conflicting parameter "w.*"'),
    ],
)
def test_hostname_key_errors(tmp_path, entries, message) -> None:
    text = "map $host $m {\n " + entries + "\n}\n" + SERVER
    assert config_errors(tmp_path, text)[0].endswith(message)


# ---------------------------------------------------------------- load-time errors


@pytest.mark.parametrize(
    "key, message",
    [
        ("~^(a", 'FILE:3: "map" regex: pcre2_compile() failed: missing ), unterminated subpattern'),
        ("~*(?U)a+", 'FILE:3: "map" regex: pcre2_compile() failed: inline option "(?U" is not supported'),
        ("~\\pL", 'FILE:3: "map" regex: pcre2_compile() failed: \\p is not supported by wstunnel'),
        ("~(?<host>.)", 'FILE:3: the duplicate "host" variable'),
        ("~(?<m>.)", 'FILE:3: the duplicate "m" variable'),
    ],
)
def test_a_bad_regex_is_an_error_at_its_line(tmp_path, key, message) -> None:
    text = "map $uri $m {\n default d;\n " + key + " x;\n}\n" + SERVER
    assert config_errors(tmp_path, text)[0].startswith(message)


def test_named_captures_are_variables_for_later_directives(tmp_path) -> None:
    config = load_config(write_config(tmp_path, "map $uri $m {\n ~^/(?<part>[a-z]+) $part;\n}\n"
                                      + SERVER.replace("X $m", "X $part")))
    assert config.servers[0].locations[0].set_headers[0].value.text == "$part"


def test_numbered_captures_are_directive_values_not_log_format_variables(tmp_path) -> None:
    text = "log_format f '$1';\n" + SERVER.replace("$m", "$1")
    assert config_errors(tmp_path, text) == ['FILE:1: unknown "1" variable']


def test_a_capture_is_one_digit_and_never_braced(tmp_path) -> None:
    config = load(tmp_path, "map $uri $m {\n ~^/(a)(b) $12;\n}\n")
    assert value(config, "$m", uri="/ab") == "a2"
    text = "map $uri $m {\n ~^/(a) ${1}x;\n}\n" + SERVER
    assert config_errors(tmp_path, text) == ['FILE:2: unknown "1" variable']


def test_a_header_read_by_a_regex_value_is_passed_to_the_map(tmp_path) -> None:
    config = load(tmp_path, "map $uri $m {\n ~^/h $http_x_thing;\n}\n")
    assert value(config, "$m", uri="/h", headers=[(b"X-Thing", b"yes")]) == "yes"


# ---------------------------------------------------------------- nginx parity


PARITY = r"""
map $http_upgrade $up {
    default                        other;
    ''                             none;
    ~*^web(?<wsver>socket)$        ws-$wsver;
    ~^h2                           h2;
}
map $host $site {
    hostnames;
    default                        none;
    example.com                    exact;
    *.example.com                  star;
    *.a.example.com                deeper;
    .example.org                   dotted;
    www.example.*                  tail;
    ~^(?<sub>[a-z]+)\.test$        re-$sub;
}
map $http_x_name $name {
    hostnames;
    default                        none;
    name.example                   exact;
    ~^(up)(per)$                   $2$1;
}
map $uri $route {
    default                        none;
    /exact                         exact;
    ~^/api/(v[0-9]+)/(?<res>[a-z]+)   $1:$res;
    ~*^/CASE/(.*)$                 case:$1;
    ~^/api/                        api-other;
}
server {
    listen {listen};
    location / {
        proxy_pass http://127.0.0.1:{backend};
        proxy_http_version 1.1;
        proxy_set_header X-Up $up;
        proxy_set_header X-Site $site;
        proxy_set_header X-Name $name;
        proxy_set_header X-Route $route;
    }
}
"""

MAPPED = (b"X-Up", b"X-Site", b"X-Name", b"X-Route")
PARITY_REQUESTS = [
    ("/exact", "example.com", "Upgrade: WebSocket\r\n"),
    ("/EXACT", "EXAMPLE.COM", "Upgrade: h2c\r\nX-Name: NAME.example.\r\n"),
    ("/api/v2/users", "b.example.com", "Upgrade: websockets\r\nX-Name: UpPer\r\n"),
    ("/api/v2/", "b.a.example.com", "X-Name: upper\r\n"),
    ("/case/Thing", "x.example.org", "X-Name: name.example..\r\n"),
    ("/CaSe/", "example.org", ""),
    ("/other", "www.example.net", ""),
    ("/api/x", "foo.test", ""),
    ("/", "Foo.Test", ""),
    ("/", "nothing.example", ""),
]


@pytest_twisted.ensureDeferred
async def test_maps_match_nginx(twins) -> None:
    sides = twins.start(PARITY)
    for path, host, extra in PARITY_REQUESTS:
        await ask_both(sides, request(path, host, extra=extra))
    seen = {side.name: [[dict(f.keys()).get(n) for n in MAPPED] for _, f in side.heads()] for side in sides}
    assert seen["wstunnel"] == seen["nginx"]
    assert seen["nginx"][:5] == [
        [b"ws-Socket", b"exact", b"none", b"exact"],
        [b"h2", b"exact", b"exact", b"exact"],
        [b"other", b"star", b"none", b"v2:users"],
        [b"none", b"deeper", b"perup", b"api-other"],
        [b"none", b"dotted", b"none", b"case:Thing"],
    ]


DIALECT = r"""
map $uri $dialect {
    default                        none;
    ~^/posix/[[:digit:]]+$         posix;
    ~^/quote/\Q.*\E$               quoted;
    "~^/brace/a{,2}$"              brace;
    "~^/empty/a{,}$"               empty;
    ~^/(?<w>[a-z]+)/\k<w>$         backref-$w;
    ~*^/ascii/\w+$                 word;
    ~^/one/(.)$                    one-$1;
    "~^/hex/\x{41}$"               hex;
}
server {
    listen {listen};
    location / {
        proxy_pass http://127.0.0.1:{backend};
        proxy_set_header X-Dialect $dialect;
    }
}
"""


@pytest_twisted.ensureDeferred
async def test_pcre_dialect_matches_nginx(twins) -> None:
    """The spellings the translation rewrites, and bytes beyond ASCII, read as nginx's PCRE reads them."""
    sides = twins.start(DIALECT)
    paths = ["/posix/123", "/posix/12a", "/quote/.*", "/quote/ab", "/brace/a%7B,2%7D", "/brace/aa", "/empty/a%7B,%7D",
             "/dup/dup", "/dup/dupe", "/ASCII/Az_9", "/ascii/%C3%A9", "/one/x", "/one/%C3%A9", "/hex/A"]
    for path in paths:
        await ask_both(sides, request(path))
    seen = {side.name: [dict(f.keys()).get(b"X-Dialect") for _, f in side.heads()] for side in sides}
    assert seen["wstunnel"] == seen["nginx"] == [
        b"posix", b"none", b"quoted", b"none", b"brace", b"none", b"empty", b"backref-dup", b"none",
        b"word", b"none", b"one-x", b"none", b"hex"]
