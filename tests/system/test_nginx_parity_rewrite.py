"""
nginx as the oracle for the rewrite module (issue 13): ``rewrite`` with
each flag, ``if`` with each kind of condition, ``set``, ``break``,
``return`` inside ``if``, server-level rewrites, the limit of ten location
searches, and the redirect-only port-80 server certbot writes.  One config
under nginx 1.22 and wstunnel; the status, Location and body of each
answer, and the request line each proxied request reached the backend
with, compared.
"""

from __future__ import annotations

import pytest_twisted

from nginx_support import Response, ask_both, request

REWRITES = """
map $uri $mapped { default m; }
server {
    listen {listen};
    server_name redirect.test;
    if ($host = redirect.test) {
        return 301 https://$host$request_uri;
    }
    return 404;
}
server {
    listen {listen} default_server;
    server_name a.test;
    proxy_http_version 1.1;
    set $who world;
    rewrite ^/old/(.*)$ /new/$1 last;
    rewrite ^/srvbreak/(.*)$ /new/sb/$1 break;
    rewrite ^/srv/(.*)$ /show/$1;
    location /new/ { proxy_pass http://127.0.0.1:{backend}/x/; }
    location /b/ { rewrite ^/b/(.*)$ /c/$1 break; proxy_pass http://127.0.0.1:{backend}/x/; }
    location /plainb/ { rewrite ^/plainb/(.*)$ "/c d/$1" break; proxy_pass http://127.0.0.1:{backend}; }
    location /perm { rewrite_log on; rewrite ^/perm(.*)$ /target$1 permanent; }
    location /redir { rewrite ^ /target?x=1 redirect; }
    location /ext { rewrite ^/ext/(.*)$ https://example.test/$1; }
    location /extq { rewrite ^/extq/(.*)$ https://example.test/$1?; }
    location /drop { rewrite ^/drop(.*)$ /new/drop$1? last; }
    location /args { rewrite ^/args/(\\w+)$ /new/args?id=$1 last; }
    location /chain { rewrite ^/chain/(.*)$ /chain2/$1; rewrite ^/chain2/(.*)$ /new/chained/$1; }
    location /loop { rewrite ^ /loop last; }
    location /count { rewrite ^/count/(\\d)(.*)$ /count/$2/$1; proxy_pass http://127.0.0.1:{backend}; }
    location /if/ {
        if ($arg_b) { proxy_pass http://127.0.0.1:{backend}; }
        proxy_pass http://127.0.0.1:{backend}/plain/;
    }
    location /neg { if ($uri !~ ^/neg/ok) { return 403; } return 200 "ok"; }
    location /eq { if ($arg_v != "") { return 200 "v=$arg_v"; } return 200 "empty"; }
    location /zero { if ($arg_z) { return 200 "true"; } return 200 "false"; }
    location /cap {
        if ($uri ~* ^/cap/(?<word>[a-z]+)/(\\d+)$) { return 200 "word=$word n=$2"; }
        return 200 "no match $1";
    }
    location /setvar { set $a "x$arg_n"; if ($a = x1) { return 200 "one [$late]"; } return 200 "a=$a"; }
    location /show/ { return 200 "$uri $request_uri $args"; }
    location /iflast { if ($arg_go) { rewrite ^ /new/went last; } return 200 "stayed"; }
    location /slash { rewrite ^(/slash/[^.]*[^/])$ $1/ permanent; proxy_pass http://127.0.0.1:{backend}; }
    location ~ ^/re/(\\w+)$ { rewrite ^ /new/re-$1 last; }
    location ~ ^/reif/(\\w+)$ {
        set $before "<$1>";
        if ($uri ~ ^/reif) { return 200 "[$1] $before"; }
    }
    location /late { set $late here; return 200 $late; }
    location /setmap { set $mapped "s$arg_s"; return 200 "$mapped"; }
    location /readmap { return 200 $mapped; }
    location /brk { set $v 1; break; return 200 "never"; }
    location /brk2 { rewrite ^/brk2(.*)$ /new/brk$1; break; return 200 "never"; }
    location /files {
        if (-f /etc/passwd) { return 200 "file"; }
        return 200 "no file";
    }
    location /dirs { if (!-d /etc/passwd) { return 200 "not a dir"; } return 200 "dir"; }
    location /exists { if (-e /nonexistent/path) { return 200 "exists"; } return 200 "absent"; }
    location /exec { if (-x /bin/sh) { return 200 "exec"; } return 200 "not exec"; }
    location / { proxy_pass http://127.0.0.1:{backend}; }
}
"""

# (host, path, what nginx 1.22 answers: status, Location, body or the request line the backend got)
CASES = [
    ("redirect.test", "/a/b?c=1", 301, b"https://redirect.test/a/b?c=1", None),
    ("a.test", "/old/a?q=1", 200, None, b"GET /x/a?q=1 HTTP/1.1"),
    ("a.test", "/srvbreak/z", 200, None, b"GET /new/sb/z HTTP/1.1"),
    ("a.test", "/b/y?q=2", 200, None, b"GET /c/y?q=2 HTTP/1.1"),
    ("a.test", "/plainb/%41", 200, None, b"GET /c%20d/A HTTP/1.1"),
    ("a.test", "/perm/x?y=1", 301, b"http://a.test:PORT/target/x?y=1", None),
    ("a.test", "/redir?o=2", 302, b"http://a.test:PORT/target?x=1&o=2", None),
    ("a.test", "/ext/p?q=3", 302, b"https://example.test/p?q=3", None),
    ("a.test", "/extq/p?q=3", 302, b"https://example.test/p", None),
    ("a.test", "/drop/d?q=4", 200, None, b"GET /x/drop/d HTTP/1.1"),
    ("a.test", "/args/abc?q=5", 200, None, b"GET /x/args?id=abc&q=5 HTTP/1.1"),
    ("a.test", "/chain/z", 200, None, b"GET /x/chained/z HTTP/1.1"),
    ("a.test", "/loop", 500, None, None),
    ("a.test", "/count/123456789", 200, None, b"GET /count//1/2/3/4/5/6/7/8/9 HTTP/1.1"),
    ("a.test", "/count/12345678901", 500, None, None),
    ("a.test", "/if/x?b=1", 200, None, b"GET /if/x?b=1 HTTP/1.1"),
    ("a.test", "/if/x", 200, None, b"GET /plain/x HTTP/1.1"),
    ("a.test", "/neg/ok", 200, None, b"ok"),
    ("a.test", "/neg/no", 403, None, None),
    ("a.test", "/eq?v=7", 200, None, b"v=7"),
    ("a.test", "/eq", 200, None, b"empty"),
    ("a.test", "/zero?z=0", 200, None, b"false"),
    ("a.test", "/zero?z=00", 200, None, b"true"),
    ("a.test", "/cap/Abc/42", 200, None, b"word=Abc n=42"),
    ("a.test", "/cap/x", 200, None, b"no match "),
    ("a.test", "/setvar?n=1", 200, None, b"one []"),
    ("a.test", "/setvar?n=2", 200, None, b"a=x2"),
    ("a.test", "/late", 200, None, b"here"),
    ("a.test", "/srv/a%2Fb?b=1", 200, None, b"/show/a/b /srv/a%2Fb?b=1 b=1"),
    ("a.test", "/iflast?go=1", 200, None, b"GET /x/went?go=1 HTTP/1.1"),
    ("a.test", "/iflast", 200, None, b"stayed"),
    ("a.test", "/slash/abc?x=1", 301, b"http://a.test:PORT/slash/abc/?x=1", None),
    ("a.test", "/slash/abc/", 200, None, b"GET /slash/abc/ HTTP/1.1"),
    # A rewrite regex without groups that matches empties $1..$9.
    ("a.test", "/re/abc", 200, None, b"GET /x/re- HTTP/1.1"),
    ("a.test", "/reif/abc", 200, None, b"[] <abc>"),
    ("a.test", "/setmap?s=1", 200, None, b"s1"),
    ("a.test", "/readmap", 200, None, b"m"),
    ("a.test", "/brk", 404, None, None),
    ("a.test", "/brk2/q", 404, None, None),
    ("a.test", "/files", 200, None, b"file"),
    ("a.test", "/dirs", 200, None, b"not a dir"),
    ("a.test", "/exists", 200, None, b"absent"),
    ("a.test", "/exec", 200, None, b"exec"),
]


def seen(response: Response, port: int) -> tuple:
    """
    Status, Location (the proxy's own port made neutral), and a 200's body:
    the returned text, or the request line the echo backend got.
    """
    status = int(response.status.split()[1])
    location = response.header(b"Location")
    if location is not None:
        location = location.replace(b":%d" % port, b":PORT")
    return status, location, response.body if status == 200 else None


@pytest_twisted.ensureDeferred
async def test_the_rewrite_module_answers_as_nginx(twins) -> None:
    sides = twins.start(REWRITES)
    ports = {side.name: side.port for side in sides}
    got: dict[str, list] = {side.name: [] for side in sides}
    for host, path, *_ in CASES:
        for name, response in (await ask_both(sides, request(path, host=host))).items():
            got[name].append((path, *seen(response, ports[name])))
    expected = [(path, status, location, body) for _, path, status, location, body in CASES]
    for name in ("nginx", "wstunnel"):
        assert [g for g, e in zip(got[name], expected) if g != e] == [], name


CORS = """
server {
    listen {listen};
    proxy_http_version 1.1;
    location / {
        add_header X-Outer yes always;
        if ($request_method = OPTIONS) {
            add_header X-Cors preflight always;
            return 204;
        }
        if ($arg_deny) { return 403; }
        proxy_pass http://127.0.0.1:{backend};
    }
}
"""


@pytest_twisted.ensureDeferred
async def test_add_header_inside_if_applies_to_its_return_as_in_nginx(twins) -> None:
    """The CORS preflight idiom: the if block's own add_header list answers the 204, the location's the rest."""
    sides = twins.start(CORS)
    got: dict[str, list] = {side.name: [] for side in sides}
    for method, path in (("OPTIONS", "/a"), ("GET", "/a?deny=1"), ("GET", "/a")):
        for name, response in (await ask_both(sides, request(path, method=method))).items():
            status = int(response.status.split()[1])
            got[name].append((status, response.header(b"X-Cors"), response.header(b"X-Outer")))
    assert got["nginx"] == [(204, b"preflight", None), (403, None, b"yes"), (200, None, b"yes")]
    assert got["wstunnel"] == got["nginx"]
