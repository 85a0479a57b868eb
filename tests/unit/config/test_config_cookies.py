"""
``proxy_cookie_domain``, ``proxy_cookie_path`` and ``proxy_cookie_flags``
as nginx 1.22 reads them: ``off`` beside another line, a lone argument,
regexes and variables checked at their line, and inheritance.
"""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config


@pytest.mark.parametrize(
    "body, message",
    [
        ("proxy_cookie_path off; proxy_cookie_path /a /b;", '"proxy_cookie_path" directive is duplicate'),
        ("proxy_cookie_domain a b; proxy_cookie_domain off;", '"proxy_cookie_domain" directive is duplicate'),
        ("proxy_cookie_flags off; proxy_cookie_flags off;", '"proxy_cookie_flags" directive is duplicate'),
        ("proxy_cookie_domain x;", 'invalid parameter "x"'),
        ("proxy_cookie_flags one;", 'invalid parameter "one"'),
        ("proxy_cookie_path ~(x /b;", 'pcre2_compile() failed: missing ), unterminated subpattern at position 0 in "(x"'),
        ("proxy_cookie_flags ~[ secure;", 'pcre2_compile() failed: missing terminating ] for character class in "["'),
        ("proxy_cookie_path /a $nothing;", 'unknown "nothing" variable'),
    ],
)
def test_refused_as_nginx_refuses(tmp_path, body, message) -> None:
    text = f"server {{\n location / {{ proxy_pass http://127.0.0.1:1; {body} }}\n}}\n"
    assert [e.partition(": ")[2] for e in config_errors(tmp_path, text)] == [message]


def test_each_list_is_inherited_on_its_own(tmp_path) -> None:
    config = load_config(write_config(tmp_path, """
        server {
            proxy_cookie_path /a/ /;
            proxy_cookie_domain .a.example .b.example;
            location /x/ { proxy_pass http://127.0.0.1:1; proxy_cookie_path off; }
            location /y/ { proxy_pass http://127.0.0.1:1; proxy_cookie_flags ~^s secure; }
        }
    """))
    x, y = (loc.response.cookies for loc in config.servers[0].locations)
    assert (x.paths, [(r.pattern.text, r.replacement.text) for r in x.domains]) == ((), [("a.example", "b.example")])
    assert [r.pattern.text for r in y.paths] == ["/a/"]
    assert [f.regex.pattern for f in y.flags] == ["^s"]
