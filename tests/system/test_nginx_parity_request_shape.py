"""
nginx as the oracle for ``proxy_method`` and ``proxy_pass_request_headers``
(issue 13): the request line and headers the backend receives.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from nginx_support import ask_both, request

CONF = """
server {
    listen {listen};
    proxy_http_version 1.1;
    location /fixed/ { proxy_pass http://127.0.0.1:{backend}; proxy_method POST; }
    location /variable/ { proxy_pass http://127.0.0.1:{backend}; proxy_method $arg_m; }
    location /bare/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_method GET;
        proxy_pass_request_body off;
        proxy_pass_request_headers off;
        proxy_set_header X-Kept $http_x_client;
    }
}
"""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "path, line, client_header",
    [
        ("/fixed/a", b"POST /fixed/a HTTP/1.1", True),
        ("/variable/a?m=PUT", b"PUT /variable/a?m=PUT HTTP/1.1", True),
        ("/bare/a", b"GET /bare/a HTTP/1.1", False),
        ("/bare/a?empty", b"GET /bare/a?empty HTTP/1.1", False),
    ],
)
async def test_upstream_request_matches_nginx(twins, path, line, client_header) -> None:
    sides = twins.start(CONF)
    extra = "X-Client: c\r\nConnection: close\r\n" + ("Content-Length: 0\r\n" if "empty" in path else "")
    await ask_both(list(reversed(sides)), request(path, method="POST" if "empty" in path else "GET", extra=extra))
    wstunnel, nginx = (side.head(0) for side in sides)
    assert wstunnel == nginx
    assert nginx[0] == line and ((b"X-Client", b"c") in nginx[1]) == client_header


@pytest_twisted.ensureDeferred
async def test_a_body_where_proxy_pass_request_body_is_off_is_refused(twins) -> None:
    """A difference: nginx reads the body and drops it; wstunnel, which streams bodies, answers 413."""
    sides = twins.start(CONF)
    got = await ask_both(sides[:1], request("/bare/a", method="POST", extra="Content-Length: 4\r\nConnection: close\r\n") + b"body")
    assert got["wstunnel"].status.split(b" ")[1] == b"413"
    assert sides[0].backend.heads == []
