"""
nginx as the oracle for ``return`` (issue 13): one config served by nginx
1.22 and by wstunnel, a redirect-only server (``return 301
https://$host$request_uri``) and a server whose locations answer with each
form of ``return``; status, Location, Content-Type and body compared.
"""

from __future__ import annotations

import asyncio

import pytest_twisted

from nginx_support import Response, ask_both, request
from support import aio

RETURNS = """
server {
    listen {listen};
    server_name redirect.test;
    return 301 https://$host$request_uri;
    location / { proxy_pass http://127.0.0.1:{backend}; }
}
server {
    listen {listen} default_server;
    server_name a.test;
    location /ok { return 200 "ok $uri"; }
    location /rel { return 302 /elsewhere; }
    location /nf { return 404; }
    location /close { return 444; }
    location /url { return https://example.test/; }
    location /gone { return 410 "gone $arg_x"; }
    location /args { return 307 $scheme://$host$uri$is_args$query_string; }
    location /first { return 201 a; return 202 b; }
    location / { proxy_pass http://127.0.0.1:{backend}; }
}
"""

CASES = [
    ("redirect.test", "/a/b?c=1"),
    ("a.test", "/ok/x"),
    ("a.test", "/rel"),
    ("a.test", "/nf"),
    ("a.test", "/url"),
    ("a.test", "/gone?x=y"),
    ("a.test", "/args?q=1"),
    ("a.test", "/args"),
    ("a.test", "/first"),
]


def seen(response: Response, port: int) -> tuple:
    """What is compared: the proxy's own port and name made neutral."""
    location = response.header(b"Location")
    if location is not None:
        location = location.replace(b":%d" % port, b":PORT")
    body = response.body.replace(b"nginx/1.22.1", b"wstunnel")
    return int(response.status.split()[1]), location, response.header(b"Content-Type"), body


@pytest_twisted.ensureDeferred
async def test_each_form_of_return_answers_as_nginx(twins) -> None:
    sides = twins.start(RETURNS)
    ports = {side.name: side.port for side in sides}
    nginx = []
    for host, path in CASES:
        answers = await ask_both(sides, request(path, host=host))
        nginx.append(seen(answers["nginx"], ports["nginx"]))
        assert seen(answers["wstunnel"], ports["wstunnel"]) == nginx[-1], path
    assert nginx[0][:2] == (301, b"https://redirect.test/a/b?c=1")
    assert nginx[1][1:] == (None, b"text/plain", b"ok /ok/x")
    assert nginx[2][:2] == (302, b"http://a.test:PORT/elsewhere")
    assert [each[0] for each in nginx[3:]] == [404, 302, 410, 307, 307, 201]
    assert all(not side.backend.heads for side in sides)


async def _closed_silently(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request("/close", host="a.test"))
        return await reader.read()
    finally:
        writer.close()


@pytest_twisted.ensureDeferred
async def test_444_closes_without_an_answer_as_nginx(twins) -> None:
    for side in twins.start(RETURNS):
        assert await aio(_closed_silently(side.port)) == b"", side.name
