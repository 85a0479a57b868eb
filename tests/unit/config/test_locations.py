"""
The ``location`` directive as nginx 1.22 reads it: modifiers, nesting
rules, duplicates, regexes compiled at load, and proxy_pass's URI part in
a regex or named location.  Each message is the one ``nginx -t`` gives.
"""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config


def load(tmp_path, body: str):
    return load_config(write_config(tmp_path, f"server {{\n{body}\n}}\n"))


def errors(tmp_path, body: str) -> list[str]:
    return config_errors(tmp_path, f"server {{\n{body}\n}}\n")


@pytest.mark.parametrize(
    "body, message",
    [
        ("location ~ ^/(a { }", 'pcre2_compile() failed: missing ), unterminated subpattern at position 2 in "^/(a"'),
        ("location ~* [z-a] { }", 'pcre2_compile() failed: bad character range z-a at position 1 in "[z-a]"'),
        ("location /x { }\nlocation ^~ /x { }", 'duplicate location "/x"'),
        ("location = /x {\n location /x/y { } }", 'location "/x/y" cannot be inside the exact location "/x"'),
        ("location /a/ {\n location /b/ { } }", 'location "/b/" is outside location "/a/"'),
        ("location ~ ^/x {\n location /x/y { } }", 'location "/x/y" is outside location "^/x"'),
        ("location /a/ {\n location @n { } }", 'named location "@n" can be on the server level only'),
        ("location @n {\n location /x { } }", 'location "/x" cannot be inside the named location "@n"'),
        ("location @ x { }", 'invalid location modifier "@"'),
        ("location ~ (?<uri>x) { }", 'the duplicate "uri" variable'),
        (
            "location ~ /x {\n proxy_pass http://127.0.0.1:1/a; }",
            '"proxy_pass" cannot have URI part in location given by regular expression, or inside named location, '
            'or inside "if" statement, or inside "limit_except" block',
        ),
        (
            "location @x {\n proxy_pass http://127.0.0.1:1/; }",
            '"proxy_pass" cannot have URI part in location given by regular expression, or inside named location, '
            'or inside "if" statement, or inside "limit_except" block',
        ),
    ],
)
def test_refused_as_nginx_refuses(tmp_path, body: str, message: str) -> None:
    line = 2 + body.count("\n")
    assert errors(tmp_path, body) == [f"FILE:{line}: {message}"]


def test_accepted_as_nginx_accepts(tmp_path) -> None:
    """Each of these passes ``nginx -t``."""
    config = load(tmp_path, """
        location @x { }
        location @x { }
        location ~ /x { }
        location ~ /x { location /x/y { } location ~ z { } }
        location ^~/glued { }
        location ~* "" { }
        location ~ (?<name>x) { proxy_pass http://127.0.0.1:1/$name/$1; proxy_set_header X $name; }
        location / { proxy_set_header Y $name; }
    """)
    kinds = [(loc.path, loc.named, loc.regex is not None, len(loc.nested)) for loc in config.servers[0].locations]
    assert kinds == [
        ("@x", True, False, 0), ("@x", True, False, 0), ("/x", False, True, 0), ("/x", False, True, 2),
        ("/x/y", False, False, 0), ("z", False, True, 0), ("^~/glued", False, False, 0), ("", False, True, 0),
        ("(?<name>x)", False, True, 0), ("/", False, False, 0),
    ]


def test_nested_locations_inherit_from_their_parent(tmp_path) -> None:
    config = load(tmp_path, """
        location /a/ {
            proxy_read_timeout 7;
            proxy_set_header X-A a;
            location ~ \\.php$ { proxy_pass http://127.0.0.1:1; }
            location /a/b/ { proxy_pass http://127.0.0.1:1; proxy_set_header X-B b; }
        }
    """)
    parent, php, b = config.servers[0].locations
    assert parent.nested == (php, b)
    assert (php.timeouts.read, [h.name for h in php.set_headers]) == (7.0, ["X-A"])
    assert (b.timeouts.read, [h.name for h in b.set_headers]) == (7.0, ["X-B"])


def test_numbered_captures_are_not_log_variables(tmp_path) -> None:
    """nginx: unknown "1" variable; a named capture is one."""
    text = "log_format a '$1';\nlog_format b '$name';\nserver { location ~ (?<name>x) { } }\n"
    assert config_errors(tmp_path, text) == ['FILE:1: unknown "1" variable']


def test_proxy_pass_with_variables_has_no_default_proxy_redirect(tmp_path) -> None:
    """nginx builds ``proxy_redirect default`` only from a proxy_pass without variables."""
    config = load(tmp_path, """
        location ~ ^/a/(.*) { proxy_pass http://127.0.0.1:1/b/$1; }
        location ~ ^/c/ { proxy_pass http://127.0.0.1:1; }
    """)
    with_vars, without = config.servers[0].locations
    assert with_vars.proxy_uri.text == "/b/$1"
    assert with_vars.response.redirects == ()
    assert [(r.pattern.text, r.replacement.text) for r in without.response.redirects] == [("http://127.0.0.1:1/", "/")]
