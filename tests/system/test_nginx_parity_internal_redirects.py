"""
nginx as the oracle for internal redirects once rewrite, files, error pages
and access control meet (issues 13 and 14): error_page to a file, a named
location serving files, try_files into locations with rewrite/if/set, a
rewrite into a location serving files, access rules reached by an internal
redirect, ``$uri`` and ``$request_uri`` (answered and logged) after each
kind, and nginx's one
count of ten internal redirects whatever mixes them.
"""

from __future__ import annotations

from pathlib import Path

import pytest_twisted

from decide_support import redirect_chain
from nginx_support import ask_both, request
from support import unused_ports


CONF = """
log_format redirects '$status $uri $request_uri';
server {
    listen {listen};
    server_name r.test;
    access_log {log} redirects;
    root {root};
    location = /404.html { }
    location /kept/ { error_page 404 /404.html; }
    location /ok/ { error_page 404 =200 /404.html; }
    location /dead/ { proxy_pass http://127.0.0.1:{dead}; error_page 502 @fallback; }
    location @fallback { try_files /fallback.txt =503; }
    location /app/ { try_files $uri @app; }
    location @app {
        set $who nobody;
        if ($uri ~ "^/app/(.+)$") { set $who $1; }
        rewrite ^ /echo/$who last;
    }
    location /echo/ { return 200 "echo uri=$uri request_uri=$request_uri args=$args"; }
    location /php/ { try_files $uri /index.php?$args; }
    location = /index.php { rewrite ^ /echo/php last; }
    location /r/ { rewrite ^/r/(.*)$ /files/$1 last; }
    location /files/ { }
    location /guarded/ { deny all; }
    location /to-guarded/ { error_page 404 /guarded/page.txt; }
    location /try-guarded/ { try_files $uri /guarded/page.txt; }
    location /authed/ { auth_request /check; }
    location /refused/ { auth_request /check-no; }
    location = /check { internal; return 204; }
    location = /check-no { internal; return 403; }
    location /loop/ { try_files /none @loop; }
    location @loop { rewrite ^ /loop/again last; }
    location /page-echo/ { error_page 404 /echo/page; }
    location /kept-set/ { set $kept yes; try_files /none /set-echo; }
    location /page-set/ { set $kept page; return 404; error_page 404 /set-echo; }
    location = /set-echo { return 200 "kept=$kept"; }
    location /named-loop { return 404; error_page 404 @named-loop; recursive_error_pages on; }
    location @named-loop { return 404; error_page 404 @named-loop; recursive_error_pages on; }
{chains}
}
"""

CASES = [
    request("/kept/nothing", host="r.test"),
    request("/ok/nothing", host="r.test"),
    request("/dead/x", host="r.test"),
    request("/app/some/path?q=1", host="r.test"),
    request("/app/real.txt", host="r.test"),
    request("/php/nothing?a=1&b=2", host="r.test"),
    request("/r/f.txt?z=9", host="r.test"),
    request("/r/none.txt", host="r.test"),
    request("/guarded/page.txt", host="r.test"),
    request("/to-guarded/nothing", host="r.test"),
    request("/try-guarded/nothing", host="r.test"),
    request("/authed/f.txt", host="r.test"),
    request("/refused/f.txt", host="r.test"),
    request("/check", host="r.test"),
    request("/loop/x", host="r.test"),
    request("/page-echo/x?k=v", host="r.test"),
    request("/ten0?a=b", host="r.test"),
    request("/eleven0", host="r.test"),
    request("/named-loop", host="r.test"),
    request("/kept-set/x", host="r.test"),
    request("/page-set/x", host="r.test"),
]


def document_root(base: Path) -> Path:
    root = base / "www"
    for folder in ("files", "app", "guarded", "authed", "refused", "kept", "ok"):
        (root / folder).mkdir(parents=True)
    (root / "404.html").write_bytes(b"the 404 page\n")
    (root / "fallback.txt").write_bytes(b"fallback file\n")
    (root / "files" / "f.txt").write_bytes(b"file f\n")
    (root / "app" / "real.txt").write_bytes(b"real app file\n")
    (root / "guarded" / "page.txt").write_bytes(b"guarded page\n")
    (root / "authed" / "f.txt").write_bytes(b"authed file\n")
    (root / "refused" / "f.txt").write_bytes(b"refused file\n")
    return root


def seen(response) -> tuple:
    status = int(response.status.split()[1])
    body = response.body
    if body.startswith(b"<html>"):
        body = b"<standard page>"
    return status, body


@pytest_twisted.ensureDeferred
async def test_internal_redirects_meet_as_in_nginx(twins, tmp_path: Path) -> None:
    dead, = unused_ports(1)
    chains = redirect_chain("ten", 10) + "\n" + redirect_chain("eleven", 11)
    conf = CONF.replace("{root}", str(document_root(tmp_path))).replace("{dead}", str(dead))
    sides = twins.start(conf.replace("{chains}", chains))
    got = []
    for raw in CASES:
        answers = await ask_both(sides, raw)
        expected = seen(answers["nginx"])
        assert seen(answers["wstunnel"]) == expected, raw
        got.append(expected)
    logged = {side.name: await side.log.wait_for(len(CASES)) for side in sides}
    assert logged["wstunnel"] == logged["nginx"]
    assert logged["nginx"][3] == "200 /echo/some/path /app/some/path?q=1"
    assert logged["nginx"][0] == "404 /404.html /kept/nothing"
    assert got == [
        (404, b"the 404 page\n"),
        (200, b"the 404 page\n"),
        (502, b"fallback file\n"),
        (200, b"echo uri=/echo/some/path request_uri=/app/some/path?q=1 args=q=1"),
        (200, b"real app file\n"),
        (200, b"echo uri=/echo/php request_uri=/php/nothing?a=1&b=2 args=a=1&b=2"),
        (200, b"file f\n"),
        (404, b"<standard page>"),
        (403, b"<standard page>"),
        (403, b"<standard page>"),
        (403, b"<standard page>"),
        (200, b"authed file\n"),
        (403, b"<standard page>"),
        (404, b"<standard page>"),
        (500, b"<standard page>"),
        (404, b"echo uri=/echo/page request_uri=/page-echo/x?k=v args="),
        (200, b"reached /ten10 /ten0?a=b"),
        (500, b"<standard page>"),
        (500, b"<standard page>"),
        (200, b"kept=yes"),
        (404, b"kept=page"),
    ]
