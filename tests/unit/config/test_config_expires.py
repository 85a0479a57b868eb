"""``expires`` as nginx 1.22 reads it: each form, and each refusal with nginx's words."""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config
from wstunnel.config.model import Expires


@pytest.mark.parametrize(
    "args, message",
    [
        ("abc", '"expires" directive invalid value'),
        ("10ms", '"expires" directive invalid value'),
        ("@25h", '"expires" directive daily time value must be less than 24 hours'),
        ("modified @1h", '"expires" directive daily time cannot be used with "modified" parameter'),
        ("modified max", '"expires" directive invalid value'),
        ("foo 1h", '"expires" directive invalid value'),
        ("1h; expires 2h", '"expires" directive is duplicate'),
        ("$nothing", 'unknown "nothing" variable'),
    ],
)
def test_refused_as_nginx_refuses(tmp_path, args, message) -> None:
    text = f"server {{\n location / {{ proxy_pass http://127.0.0.1:1; expires {args}; }}\n}}\n"
    assert [e.partition(": ")[2] for e in config_errors(tmp_path, text)] == [message]


@pytest.mark.parametrize(
    "args, expected",
    [
        ("1h", Expires("access", 3600)),
        ("+1d", Expires("access", 86400)),
        ("-1", Expires("access", -1)),
        ("modified 30d", Expires("modified", 30 * 86400)),
        ("@15h30m", Expires("daily", 15 * 3600 + 1800)),
        ("epoch", Expires("epoch", 0)),
        ("max", Expires("max", 0)),
        ("off", None),
    ],
)
def test_each_form(tmp_path, args, expected) -> None:
    config = load_config(write_config(tmp_path, f"server {{ location / {{ proxy_pass http://127.0.0.1:1; expires {args}; }} }}"))
    assert config.servers[0].locations[0].response.expires == expected


def test_inherited_and_turned_off(tmp_path) -> None:
    config = load_config(write_config(tmp_path, """
        server {
            expires 1h;
            location /a/ { proxy_pass http://127.0.0.1:1; }
            location /b/ { proxy_pass http://127.0.0.1:1; expires off; }
        }
    """))
    assert [loc.response.expires for loc in config.servers[0].locations] == [Expires("access", 3600), None]
