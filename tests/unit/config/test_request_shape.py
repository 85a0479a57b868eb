"""``proxy_method``, ``proxy_pass_request_headers``, ``proxy_pass_request_body`` as read, and inherited."""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config


@pytest.mark.parametrize(
    "line, message",
    [
        ("proxy_method GET POST", 'invalid number of arguments in "proxy_method" directive'),
        ("proxy_method $nothing", 'unknown "nothing" variable'),
        ("proxy_pass_request_body maybe", 'invalid value "maybe" in "proxy_pass_request_body" directive, it must be "on" or "off"'),
        ("proxy_pass_request_headers on; proxy_pass_request_headers off", '"proxy_pass_request_headers" directive is duplicate'),
        ("proxy_pass_request_headers yes", 'invalid value "yes" in "proxy_pass_request_headers" directive, it must be "on" or "off"'),
        ("ignore_invalid_headers maybe", 'invalid value "maybe" in "ignore_invalid_headers" directive, it must be "on" or "off"'),
    ],
)
def test_refused(tmp_path, line, message) -> None:
    assert [e.partition(": ")[2] for e in config_errors(tmp_path, f"http {{ {line}; }}")] == [message]


def test_inherited(tmp_path) -> None:
    config = load_config(write_config(tmp_path, """
        server {
            ignore_invalid_headers off;
            proxy_method POST;
            proxy_pass_request_headers off;
            proxy_pass_request_body off;
            location /a/ { proxy_pass http://127.0.0.1:1; }
            location /b/ {
                proxy_pass http://127.0.0.1:1;
                proxy_method $request_uri;
                proxy_pass_request_headers on;
                proxy_pass_request_body on;
            }
        }
    """))
    assert config.servers[0].client.ignore_invalid_headers is False
    a, b = (loc.upstream_shape for loc in config.servers[0].locations)
    assert (a.method.text, a.pass_headers, a.pass_body) == ("POST", False, False)
    assert (b.method.text, b.pass_headers, b.pass_body) == ("$request_uri", True, True)
