"""
nginx as the oracle for ``proxy_cookie_domain``, ``proxy_cookie_path`` and
``proxy_cookie_flags`` (issue 13): one backend answer with several
Set-Cookie headers, spelt in several ways, through locations with
different rules; every Set-Cookie the client gets is compared, in order.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from nginx_support import ask_both, request, scripted_answer

CONF = r"""
server {
    listen {listen};
    proxy_cookie_path /app/ /;
    location /inherited/ { proxy_pass http://127.0.0.1:{backend}; }
    location /off/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_cookie_path off;
    }
    location /domains/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_cookie_domain backend.example $host;
        proxy_cookie_domain ~^(?<sub>[a-z]+)\.other\.example$ $sub.front.example;
        proxy_cookie_path ~*^/API/(.*)$ /api/$1;
        proxy_cookie_path /other /elsewhere;
    }
    location /flags/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_cookie_flags one secure httponly samesite=strict;
        proxy_cookie_flags ~^t nosecure nohttponly nosamesite;
        proxy_cookie_flags $arg_c samesite=lax bogus;
        proxy_cookie_flags Five SECURE;
    }
}
"""

ANSWER = (
    b"HTTP/1.1 200 OK\r\n"
    b"Set-Cookie: one=1; Path=/app/x; Domain=.Backend.Example; SameSite=None\r\n"
    b"Set-Cookie: two=2;path=/API/v1 ; domain=a.other.example;Secure;HttpOnly;SameSite=Lax\r\n"
    b"Set-Cookie: three=3; Path=/app/\r\n"
    b"Set-Cookie: noequals; Path=/app/\r\n"
    b"Set-Cookie: four=4; Path=/app/;\r\n"
    b"Set-Cookie: five=5; Path=/other; secure\r\n"
    b"Content-Length: 2\r\nConnection: close\r\n\r\nok"
)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", ["/inherited/a", "/off/a", "/domains/a", "/flags/a?c=four"])
async def test_set_cookie_rewritten_as_nginx_does(twins, path) -> None:
    sides = twins.start(CONF, scripted_answer(ANSWER))
    got = await ask_both(list(reversed(sides)), request(path, host="Front.Example", extra="Connection: close\r\n"))
    cookies = {name: [v for n, v in r.headers if n.lower() == b"set-cookie"] for name, r in got.items()}
    assert len(cookies["nginx"]) == 6
    assert cookies["wstunnel"] == cookies["nginx"]
