"""
nginx as the oracle for ``ignore_invalid_headers`` (issue 13): which
request headers with names beyond letters, digits and ``-`` reach the
backend and ``$http_*``, with the default (``on``) and with ``off`` on the
listening address's default server.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from nginx_support import ask_both, request

CONF = """
server {
    listen {listen};
    IGNORE
    location / {
        proxy_pass http://127.0.0.1:{backend};
        proxy_http_version 1.1;
        proxy_set_header X-Seen "$http_x_under";
    }
}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("setting", ["", "ignore_invalid_headers on;", "ignore_invalid_headers off;"])
async def test_invalid_names_as_nginx_treats_them(twins, setting) -> None:
    sides = twins.start(CONF.replace("IGNORE", setting))
    extra = "X_Under: u\r\nX.Dot: d\r\nX-Fine: f\r\nConnection: close\r\n"
    await ask_both(list(reversed(sides)), request("/a", extra=extra))
    wstunnel, nginx = (side.head(0) for side in sides)
    assert wstunnel == nginx
    assert ((b"X_Under", b"u") in nginx[1]) == ("off" in setting)
