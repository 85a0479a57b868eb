"""
nginx as the oracle for gzip on proxied answers (issue 14): one config under
nginx and wstunnel, the same answers from their backends, and what each
client gets compared: whether it is compressed (gzip_types, gzip_min_length,
statuses, an encoded body, Accept-Encoding with q=0, HEAD, HTTP/1.0,
gzip_proxied on a request with Via, gzip_disable), Vary, ETag,
Content-Length, Accept-Ranges and the decompressed body, on proxied answers
and on the proxies' own (``return``, error pages); and server-sent events
still flowing one by one through the compressor.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest
import pytest_twisted

from nginx_support import Response, Side, ask_both, request
from support import ScriptedBackend, aio, read_exactly, read_until

CONF = """
server {
    listen {listen};
    server_tokens off;
    location / {
        proxy_pass http://127.0.0.1:{backend};
        gzip on;
        gzip_types text/plain application/json;
        gzip_min_length 100;
        gzip_vary on;
        gzip_proxied expired no-cache no_etag;
    }
    location /any/ {
        proxy_pass http://127.0.0.1:{backend};
        gzip on;
        gzip_types *;
        gzip_proxied any;
        gzip_disable "curl/" msie6;
        gzip_http_version 1.0;
    }
    location /off/ { proxy_pass http://127.0.0.1:{backend}; }
    location /own/ {
        gzip on;
        gzip_types text/plain;
        location /own/missing { return 404; }
        location /own/gone { return 410; }
        location /own/text { return 200 "an answer of our own, long enough to be compressed by both proxies"; }
    }
    location /sse/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_buffering off;
        gzip on;
        gzip_types text/event-stream;
    }
}
"""

BODY = b"".join(b"line %03d of a compressible answer\n" % n for n in range(40))
PAST = b"Thu, 01 Jan 1970 00:00:01 GMT"
FUTURE = b"Thu, 01 Jan 2099 00:00:01 GMT"

# What the backend answers, by the last segment of the path.
ANSWERS: dict[bytes, tuple[bytes, bytes, bytes]] = {
    b"html": (b"200 OK", b"Content-Type: text/html\r\nETag: \"abc\"\r\nAccept-Ranges: bytes\r\n", BODY),
    b"plain": (b"200 OK", b"Content-Type: text/plain; charset=utf-8\r\n", BODY),
    b"params": (b"200 OK", b"Content-Type: text/plain; q=1\r\n", BODY),
    b"short": (b"200 OK", b"Content-Type: text/html\r\n", BODY[:99]),
    b"png": (b"200 OK", b"Content-Type: image/png\r\n", BODY),
    b"none": (b"200 OK", b"", BODY),
    b"encoded": (b"200 OK", b"Content-Type: text/html\r\nContent-Encoding: identity\r\n", BODY),
    b"missing": (b"404 Not Found", b"Content-Type: text/html\r\n", BODY),
    b"broken": (b"500 Internal Server Error", b"Content-Type: text/html\r\n", BODY),
    b"part": (b"206 Partial Content", b"Content-Type: text/html\r\nContent-Range: bytes 0-1439/2000\r\n", BODY),
    b"weak": (b"200 OK", b"Content-Type: text/html\r\nETag: W/\"w\"\r\n", BODY),
    b"expired": (b"200 OK", b"Content-Type: text/html\r\nExpires: " + PAST + b"\r\n", BODY),
    b"future": (b"200 OK", b"Content-Type: text/html\r\nExpires: " + FUTURE + b"\r\n", BODY),
    b"nocache": (b"200 OK", b"Content-Type: text/html\r\nCache-Control: private, no-cache\r\n", BODY),
    b"private": (b"200 OK", b"Content-Type: text/html\r\nCache-Control: private\r\n", BODY),
    b"lm": (b"200 OK", b"Content-Type: text/html\r\nLast-Modified: " + PAST + b"\r\n", BODY),
}


def by_path(backend: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """The canned answer the path names, with its length unless the path says "stream"; then closes."""
    path = head.split(b" ", 2)[1]
    status, headers, body = ANSWERS[path.rsplit(b"/", 1)[1]]
    if not path.startswith(b"/stream/"):
        headers += b"Content-Length: %d\r\n" % len(body)
    backend.transport.write(b"HTTP/1.1 " + status + b"\r\n" + headers + b"Connection: close\r\n\r\n" + body)
    backend.transport.loseConnection()


def shape(response: Response) -> tuple:
    """What the parity is about: the status, the gzip-related headers, the framing, the body as decoded."""
    headers = {n.lower(): v for n, v in response.headers}
    varies = [v for n, v in response.headers if n.lower() == b"vary"]
    encoded = headers.get(b"content-encoding") == b"gzip"
    body = gzip.decompress(response.body) if encoded and response.body else response.body
    body = body.replace(b"<center>nginx</center>", b"<center>wstunnel</center>")  # the proxies' own pages
    return (
        response.status.split(b" ")[1],
        headers.get(b"content-encoding"),
        varies,
        headers.get(b"etag"),
        b"content-length" in headers,
        headers.get(b"accept-ranges"),
        response.chunked,
        body,
    )


GZ = "Accept-Encoding: gzip, deflate\r\n"
VIA = "Via: 1.1 cache\r\n"

CASES = [
    pytest.param("/a/html", GZ, "GET", True, id="html-etag-ranges"),
    pytest.param("/own/text", GZ, "GET", True, id="own-return-text"),
    pytest.param("/own/text", GZ, "HEAD", True, id="own-return-head"),
    pytest.param("/own/gone", GZ, "GET", False, id="own-410"),
    pytest.param("/own/missing", GZ, "GET", True, id="own-404-page"),
    pytest.param("/a/plain", GZ, "GET", True, id="listed-type-charset"),
    pytest.param("/a/params", GZ, "GET", False, id="type-with-params"),
    pytest.param("/a/short", GZ, "GET", False, id="under-min-length"),
    pytest.param("/stream/short", GZ, "GET", True, id="unknown-length"),
    pytest.param("/a/png", GZ, "GET", False, id="unlisted-type"),
    pytest.param("/a/none", GZ, "GET", False, id="no-type"),
    pytest.param("/any/none", GZ, "GET", True, id="star-no-type"),
    pytest.param("/a/encoded", GZ, "GET", False, id="already-encoded"),
    pytest.param("/a/missing", GZ, "GET", True, id="404"),
    pytest.param("/a/broken", GZ, "GET", False, id="500"),
    pytest.param("/a/part", GZ, "GET", False, id="206"),
    pytest.param("/a/weak", GZ, "GET", True, id="weak-etag"),
    pytest.param("/a/html", "", "GET", False, id="no-accept-encoding"),
    pytest.param("/a/html", "Accept-Encoding: gzip;q=0, deflate\r\n", "GET", False, id="q0"),
    pytest.param("/a/html", "Accept-Encoding: GZIP;q=0.5\r\n", "GET", True, id="q-half"),
    pytest.param("/a/html", "Accept-Encoding: x-gzip\r\n", "GET", False, id="x-gzip"),
    pytest.param("/a/html", "Accept-Encoding: identity\r\nAccept-Encoding: gzip\r\n", "GET", False,
                 id="first-accept-encoding-line"),
    pytest.param("/a/html", "Accept-Encoding: gzip; q=0.5\r\n", "GET", True, id="space-before-q"),
    pytest.param("/a/html", "Accept-Encoding: gzip;  q=0\r\n", "GET", False, id="spaces-before-q0"),
    pytest.param("/a/html", "Accept-Encoding: gzip;Q=0.5\r\n", "GET", True, id="upper-q"),
    pytest.param("/any/html", GZ + "Via:\r\n", "GET", True, id="empty-via"),
    pytest.param("/a/html", GZ + "Via:\r\n", "GET", False, id="empty-via-etag"),
    pytest.param("/a/html", GZ, "HEAD", True, id="head-gets-a-get-head"),
    pytest.param("/off/html", GZ, "GET", False, id="gzip-off"),
    pytest.param("/a/html", GZ + VIA, "GET", False, id="via-etag"),
    pytest.param("/a/plain", GZ + VIA, "GET", True, id="via-no-etag"),
    pytest.param("/a/expired", GZ + VIA, "GET", True, id="via-expired"),
    pytest.param("/a/future", GZ + VIA, "GET", False, id="via-future"),
    pytest.param("/a/nocache", GZ + VIA, "GET", True, id="via-no-cache"),
    pytest.param("/a/private", GZ + VIA, "GET", False, id="via-private-not-listed"),
    pytest.param("/a/lm", GZ + VIA, "GET", True, id="via-last-modified"),
    pytest.param("/any/html", GZ + VIA, "GET", True, id="via-any"),
    pytest.param("/any/html", GZ + "User-Agent: CURL/8.0\r\n", "GET", False, id="disable-regex-caseless"),
    pytest.param("/any/html", GZ + "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\n",
                 "GET", False, id="disable-msie6"),
    pytest.param("/any/html", GZ + "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)\r\n",
                 "GET", True, id="msie6-sv1"),
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path, extra, method, compressed", CASES)
async def test_what_is_compressed_matches_nginx(twins, path, extra, method, compressed) -> None:
    sides = twins.start(CONF, by_path)
    got = await ask_both(sides, request(path, method=method, extra="Connection: close\r\n" + extra))
    assert shape(got["wstunnel"]) == shape(got["nginx"])
    assert (shape(got["nginx"])[1] == b"gzip") is compressed


@pytest_twisted.ensureDeferred
async def test_an_http10_client_gets_gzip_until_close_as_from_nginx(twins) -> None:
    sides = twins.start(CONF, by_path)
    ask = f"GET /any/html HTTP/1.0\r\nHost: localhost\r\n{GZ}\r\n".encode()
    got = await ask_both(sides, ask)
    assert shape(got["wstunnel"]) == shape(got["nginx"])
    assert got["nginx"].header(b"Content-Encoding") == b"gzip" and got["nginx"].header(b"Connection") == b"close"


EVENTS = [b"data: event %d\n\n" % n for n in range(3)]


def sse(backend: ScriptedBackend, head: bytes, rest: bytes) -> None:
    """An event stream of unknown length; the test writes the later events itself."""
    backend.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + EVENTS[0])


async def events_one_by_one(side: Side) -> list[bytes]:
    """Each event, decompressed as it arrives, before the backend sends the next one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
    writer.write(request("/sse/live", extra=GZ).decode().encode())
    head = await read_until(reader, b"\r\n\r\n")
    assert b"\r\nContent-Encoding: gzip\r\n" in head and b"\r\nTransfer-Encoding: chunked\r\n" in head
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    seen = []
    for n, event in enumerate(EVENTS):
        if n:
            side.backend.connections[-1].transport.write(event)
        text = b""
        while len(text) < len(event):
            text += inflate.decompress(await next_chunk(reader))
        seen.append(text)
    side.backend.connections[-1].transport.loseConnection()
    while piece := await next_chunk(reader):
        assert inflate.decompress(piece) == b""
    writer.close()
    assert inflate.eof, "the gzip stream was finished"
    return seen


async def next_chunk(reader: asyncio.StreamReader) -> bytes:
    """One chunk's payload; b"" for the last chunk."""
    size = int((await read_until(reader, b"\r\n")).split(b";")[0], 16)
    payload = await read_exactly(reader, size)
    await read_exactly(reader, 2)
    return payload


@pytest_twisted.ensureDeferred
async def test_server_sent_events_flow_one_by_one_as_through_nginx(twins) -> None:
    for side in twins.start(CONF, sse):
        assert await aio(events_one_by_one(side)) == EVENTS, side.name
