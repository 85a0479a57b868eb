"""net.compress on the answer path: gzip applied as the body streams, through the MemoryProxy harness."""

from __future__ import annotations

import zlib
from pathlib import Path

from support import MemoryProxy, load_text, switch_answer, upgrade_request

CONF = """
server {{
    listen 127.0.0.1:8080;
    location / {{
        proxy_pass http://127.0.0.1:9001;
        gzip on;
        gzip_types text/plain text/event-stream;
        gzip_vary on;
        {extra}
    }}
}}
"""


def proxy(tmp_path: Path, extra: str = "") -> MemoryProxy:
    h = MemoryProxy(load_text(tmp_path / "t.conf", CONF.format(extra=extra)))
    h.connect_client()
    return h


def get(version: bytes = b"1.1", extra: bytes = b"Accept-Encoding: gzip\r\n") -> bytes:
    return b"GET /x HTTP/" + version + b"\r\nHost: a\r\n" + extra + b"\r\n"


def chunks(body: bytes) -> list[bytes]:
    """The chunk payloads of a chunked body, in order, up to the last chunk."""
    out = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out.append(body[:size])
        body = body[size + 2 :]


def test_a_streamed_answer_is_gzipped_chunk_by_chunk(tmp_path) -> None:
    h = proxy(tmp_path)
    h.client.dataReceived(get())
    upstream, _ = h.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 2000\r\n"
                          b"ETag: \"v1\"\r\nAccept-Ranges: bytes\r\n\r\n")
    head, _, body = h.ct.value().partition(b"\r\n\r\n")
    assert b"\r\nContent-Encoding: gzip" in head and b"\r\nVary: Accept-Encoding" in head
    assert b"\r\nTransfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert b'\r\nETag: W/"v1"' in head and b"Accept-Ranges" not in head
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for n in range(2):
        before = len(h.ct.value())
        upstream.dataReceived(b"data: %d\n\n" % n + b"x" * 991)
        piece = chunks(h.ct.value()[before:] + b"0\r\n\r\n")[0]
        assert inflate.decompress(piece) == b"data: %d\n\n" % n + b"x" * 991, "each chunk is flushed"
    _, _, body = h.ct.value().partition(b"\r\n\r\n")
    assert body.endswith(b"\r\n0\r\n\r\n")
    assert zlib.decompress(b"".join(chunks(body)), 16 + zlib.MAX_WBITS).startswith(b"data: 0\n\n")


def test_an_http10_client_gets_a_close_delimited_body(tmp_path) -> None:
    h = proxy(tmp_path, "gzip_http_version 1.0;")
    h.client.dataReceived(get(b"1.0"))
    h.answer(b"200 OK\r\nContent-Type: text/plain", b"hello " * 100)
    head, _, body = h.ct.value().partition(b"\r\n\r\n")
    assert b"\r\nConnection: close" in head and b"Transfer-Encoding" not in head
    assert zlib.decompress(body, 16 + zlib.MAX_WBITS) == b"hello " * 100


def test_what_is_never_compressed(tmp_path) -> None:
    h = proxy(tmp_path)
    h.client.dataReceived(get(extra=b""))
    h.answer(b"200 OK\r\nContent-Type: text/plain", b"plain " * 100)
    head, _, body = h.ct.value().partition(b"\r\n\r\n")
    assert b"Content-Encoding" not in head and b"\r\nVary: Accept-Encoding" in head and body == b"plain " * 100
    h = proxy(tmp_path)
    h.client.dataReceived(get().replace(b"GET", b"HEAD"))
    h.upstream()[0].dataReceived(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 600\r\n\r\n")
    assert b"\r\nContent-Encoding: gzip\r\n" in h.ct.value() and h.ct.value().endswith(b"\r\n\r\n"), "as nginx: a GET's head"
    h = proxy(tmp_path)
    h.client.dataReceived(get())
    h.answer(b"206 Partial Content\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-9/100", b"0123456789")
    assert b"Content-Encoding" not in h.ct.value() and h.ct.value().endswith(b"0123456789")


def test_a_websocket_upgrade_is_never_compressed(tmp_path) -> None:
    h = proxy(tmp_path)
    h.client.dataReceived(upgrade_request("/").replace(b"\r\n\r\n", b"\r\nAccept-Encoding: gzip\r\n\r\n"))
    upstream, ut = h.upstream()
    upstream.dataReceived(switch_answer(ut.value().split(b"\r\n\r\n")[0], b"frame"))
    assert b"Content-Encoding" not in h.ct.value() and h.ct.value().endswith(b"\r\n\r\nframe")


def test_keep_alive_carries_on_after_a_gzipped_answer(tmp_path) -> None:
    h = proxy(tmp_path)
    h.client.dataReceived(get())
    h.answer(b"200 OK\r\nContent-Type: text/plain", b"one " * 50)
    first = h.ct.value()
    h.client.dataReceived(get(extra=b""))
    h.answer(b"200 OK\r\nContent-Type: text/plain", b"two " * 50, index=-1)
    second = h.ct.value()[len(first) :]
    assert b"Content-Encoding" not in second and second.endswith(b"two " * 50)
    _, _, body = first.partition(b"\r\n\r\n")
    assert zlib.decompress(b"".join(chunks(body)), 16 + zlib.MAX_WBITS) == b"one " * 50


def test_an_own_answer_is_gzipped_and_chunked(tmp_path) -> None:
    h = proxy(tmp_path, 'location /own { return 200 "%s"; }' % ("own text " * 20))
    h.client.dataReceived(get().replace(b"/x", b"/own"))
    head, _, body = h.ct.value().partition(b"\r\n\r\n")
    assert b"\r\nContent-Encoding: gzip" in head and b"Content-Length" not in head
    assert zlib.decompress(b"".join(chunks(body)), 16 + zlib.MAX_WBITS) == b"own text " * 20
