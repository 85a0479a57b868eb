"""``charset`` and its companions as read: refusals (recoding is one) and what a location ends with."""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.charset import DEFAULT_TYPES
from wstunnel.config.loader import load_config


@pytest.mark.parametrize(
    "body, message",
    [
        ("charset off; charset utf-8;", '"charset" directive is duplicate'),
        ("override_charset maybe;", 'invalid value "maybe" in "override_charset" directive, it must be "on" or "off"'),
        ("charset $nothing;", 'unknown "nothing" variable'),
        (
            "charset koi8-r; source_charset utf-8;",
            'no "charset_map" between the charsets "utf-8" and "koi8-r": recoding is not supported by wstunnel',
        ),
    ],
)
def test_refused(tmp_path, body, message) -> None:
    text = f"server {{\n {body}\n location /a/ {{ proxy_pass http://127.0.0.1:1; }}\n location /b/ {{ }}\n}}\n"
    assert [e.partition(": ")[2] for e in config_errors(tmp_path, text)] == [message]


def test_a_same_source_charset_and_a_variable_are_accepted(tmp_path) -> None:
    config = load_config(write_config(tmp_path, """
        server {
            charset UTF-8; source_charset utf-8;
            location /a/ { proxy_pass http://127.0.0.1:1; charset_types text/csv; }
            location /b/ { proxy_pass http://127.0.0.1:1; charset $arg_c; }
            location /c/ { proxy_pass http://127.0.0.1:1; charset off; }
        }
    """))
    a, b, c = (loc.response.charset for loc in config.servers[0].locations)
    assert (a.name.text, a.source.text, a.types) == ("UTF-8", "utf-8", {"text/csv", "text/html"})
    assert (b.name.text, b.types) == ("$arg_c", DEFAULT_TYPES)
    assert c is None
