"""
``proxy_redirect`` as nginx 1.22 reads it: the placement and variable
rules of ``default``, ``off`` beside other lines, regexes compiled at load,
and what a nested location inherits.  Each message is the one ``nginx -t``
gives.
"""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config


def rules(tmp_path, body: str) -> list[list[tuple[str, str, bool]]]:
    config = load_config(write_config(tmp_path, f"server {{\n{body}\n}}\n"))
    return [
        [(r.pattern.text, r.replacement.text, r.regex is not None) for r in loc.response.redirects]
        for loc in config.servers[0].locations
    ]


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "proxy_redirect default;\nlocation / { proxy_pass http://127.0.0.1:1; }",
            '"proxy_redirect default" should be placed after the "proxy_pass" directive',
        ),
        (
            "location / { proxy_redirect default; proxy_pass http://127.0.0.1:1; }",
            '"proxy_redirect default" should be placed after the "proxy_pass" directive',
        ),
        (
            "location / { proxy_pass http://127.0.0.1:1/$uri; proxy_redirect default; }",
            '"proxy_redirect default" cannot be used with "proxy_pass" directive with variables',
        ),
        ("location / { proxy_redirect off; proxy_redirect /a /b; }", '"proxy_redirect" directive is duplicate'),
        ("location / { proxy_redirect /a /b; proxy_redirect off; }", '"proxy_redirect" directive is duplicate'),
        ("location / { proxy_redirect false; }", 'invalid parameter "false"'),
        ("location / { proxy_redirect ~(x /b; }", 'pcre2_compile() failed: missing ), unterminated subpattern at position 0 in "(x"'),
        ("location / { proxy_redirect /a $nothing; }", 'unknown "nothing" variable'),
    ],
)
def test_refused_as_nginx_refuses(tmp_path, body, message) -> None:
    assert [e.partition(": ")[2] for e in config_errors(tmp_path, f"server {{\n{body}\n}}\n")] == [message]


def test_explicit_default_is_the_enclosing_proxy_pass(tmp_path) -> None:
    """A nested location inherits its parent's ``default``, worked out from the parent's proxy_pass."""
    got = rules(tmp_path, """
        location /a/ {
            proxy_pass http://127.0.0.1:1/x/;
            proxy_redirect default;
            location /a/b/ { proxy_pass http://127.0.0.1:2/y/; }
        }
    """)
    assert got == [[("http://127.0.0.1:1/x/", "/a/", False)]] * 2


def test_a_regex_rule_and_its_named_capture(tmp_path) -> None:
    got = rules(tmp_path, "location / { proxy_pass http://127.0.0.1:1; proxy_redirect ~*^http://(?<h>[^/]+)/ /$h/; }")
    assert got == [[("~*^http://(?<h>[^/]+)/", "/$h/", True)]]


def test_off_at_the_server_cancels_the_implicit_default(tmp_path) -> None:
    got = rules(tmp_path, """
        proxy_redirect off;
        location /a/ { proxy_pass http://127.0.0.1:1; }
        location /b/ { proxy_pass http://127.0.0.1:1; proxy_redirect /x /y; }
    """)
    assert got == [[], [("/x", "/y", False)]]
