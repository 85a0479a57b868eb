"""
nginx as the oracle for location selection (issue 13): one config with
every kind of location (exact, prefix, ``^~``, ``~``, ``~*``, nested,
named) proxied to a backend that echoes the request line, the same paths
sent to nginx 1.22 and to wstunnel, and the request line, the ``X-Loc``
header (captures included) and the access-log line compared.
"""

from __future__ import annotations

import pytest_twisted

from nginx_support import ask_both, request

LOCATIONS = """
log_format loc '$uri|$name|$ext';
server {
    listen {listen};
    access_log {log} loc;
    proxy_http_version 1.1;
    location = / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "= /"; }
    location / { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "/"; }
    location ^~ /static/ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "^~ /static/"; }
    location ~* \\.(?<ext>png|jpe?g)$ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "~* $1"; }
    location ~ ^/api/v(\\d+)/(?<name>[a-z]+) {
        proxy_pass http://127.0.0.1:{backend}/internal/$name/v$1;
        proxy_set_header X-Loc "~ api $1 $2 $name";
    }
    location ~ ^/ws/(?P<name>\\w+)$ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "~ ws $name"; }
    location = /exact { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "= /exact"; }
    location /exact { proxy_pass http://127.0.0.1:{backend}/prefix; proxy_set_header X-Loc "/exact"; }
    location /app/ {
        proxy_pass http://127.0.0.1:{backend}/backend/;
        proxy_set_header X-Loc "/app/";
        location ~ \\.php$ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "/app/ ~ php"; }
        location /app/admin/ {
            proxy_pass http://127.0.0.1:{backend}/admin/;
            proxy_set_header X-Loc "/app/admin/";
            location ~ \\.css$ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "/app/admin/ ~ css"; }
        }
        location ^~ /app/raw/ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "^~ /app/raw/"; }
    }
    location ~ /pre/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_set_header X-Loc "~ /pre/";
        location /pre/y/ { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "~ /pre/ /pre/y/"; }
    }
    location @fallback { proxy_pass http://127.0.0.1:{backend}; proxy_set_header X-Loc "@fallback"; }
}
"""

# (path, the request line the backend gets, X-Loc, the log line): what nginx 1.22 does.
# An unset named capture is logged as "-", as a variable that is not found.
CASES = [
    ("/", "GET / HTTP/1.1", "= /", "/|-|-"),
    ("/index.html?a=1", "GET /index.html?a=1 HTTP/1.1", "/", "/index.html|-|-"),
    ("/static/a.png", "GET /static/a.png HTTP/1.1", "^~ /static/", "/static/a.png|-|-"),
    ("/img/a.PNG", "GET /img/a.PNG HTTP/1.1", "~* PNG", "/img/a.PNG|-|PNG"),
    ("/img/a.jpeg?x", "GET /img/a.jpeg?x HTTP/1.1", "~* jpeg", "/img/a.jpeg|-|jpeg"),
    ("/api/v2/users?id=7", "GET /internal/users/v2 HTTP/1.1", "~ api 2 users users", "/api/v2/users|users|-"),
    ("/api/v10/x/y", "GET /internal/x/v10 HTTP/1.1", "~ api 10 x x", "/api/v10/x/y|x|-"),
    ("/api/vx/users", "GET /api/vx/users HTTP/1.1", "/", "/api/vx/users|-|-"),
    ("/API/v2/users", "GET /API/v2/users HTTP/1.1", "/", "/API/v2/users|-|-"),
    ("/ws/room1", "GET /ws/room1 HTTP/1.1", "~ ws room1", "/ws/room1|room1|-"),
    ("/ws/room1/more", "GET /ws/room1/more HTTP/1.1", "/", "/ws/room1/more|-|-"),
    ("/exact", "GET /exact HTTP/1.1", "= /exact", "/exact|-|-"),
    ("/exactly?q", "GET /prefixly?q HTTP/1.1", "/exact", "/exactly|-|-"),
    ("/app/page", "GET /backend/page HTTP/1.1", "/app/", "/app/page|-|-"),
    ("/app/index.php?a=b", "GET /app/index.php?a=b HTTP/1.1", "/app/ ~ php", "/app/index.php|-|-"),
    ("/app/admin/users", "GET /admin/users HTTP/1.1", "/app/admin/", "/app/admin/users|-|-"),
    ("/app/admin/x.php", "GET /app/admin/x.php HTTP/1.1", "/app/ ~ php", "/app/admin/x.php|-|-"),
    ("/app/admin/a.css", "GET /app/admin/a.css HTTP/1.1", "/app/admin/ ~ css", "/app/admin/a.css|-|-"),
    ("/app/raw/a.php", "GET /app/raw/a.php HTTP/1.1", "^~ /app/raw/", "/app/raw/a.php|-|-"),
    # A nested ^~ stops its parent's regexes, not the server's.
    ("/app/raw/a.png", "GET /app/raw/a.png HTTP/1.1", "~* png", "/app/raw/a.png|-|png"),
    ("/app/a.png", "GET /app/a.png HTTP/1.1", "~* png", "/app/a.png|-|png"),
    ("/static/../app/page", "GET /backend/page HTTP/1.1", "/app/", "/app/page|-|-"),
    ("/pre/x", "GET /pre/x HTTP/1.1", "~ /pre/", "/pre/x|-|-"),
    # A prefix nested in a regex location is accepted, and never chosen.
    ("/pre/y/z", "GET /pre/y/z HTTP/1.1", "~ /pre/", "/pre/y/z|-|-"),
    ("/pre/y", "GET /pre/y HTTP/1.1", "~ /pre/", "/pre/y|-|-"),
    ("/@fallback", "GET /@fallback HTTP/1.1", "/", "/@fallback|-|-"),
    ("/app/%61dmin/x", "GET /admin/x HTTP/1.1", "/app/admin/", "/app/admin/x|-|-"),
]


@pytest_twisted.ensureDeferred
async def test_every_kind_of_location_against_nginx(twins) -> None:
    """Each path is answered by the same location, which sends the same request line, as in nginx."""
    sides = twins.start(LOCATIONS)
    for path, *_ in CASES:
        await ask_both(sides, request(path))
    seen = {}
    for side in sides:
        logged = await side.log.wait_for(len(CASES))
        heads = side.heads()
        seen[side.name] = [
            (line.decode(), dict(headers.elements())[b"X-Loc"].decode(), log)
            for (line, headers), log in zip(heads, logged)
        ]
    expected = [(line, loc, log) for _, line, loc, log in CASES]
    assert seen["nginx"] == expected
    assert seen["wstunnel"] == expected
