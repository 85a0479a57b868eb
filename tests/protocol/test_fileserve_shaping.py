"""
net.fileserve under the answer-shaping directives, on the in-memory
harness and its clock: ``limit_rate`` holds a file to its rate after
``limit_rate_after`` (the sender waits out the bucket before its next
chunk, however often the socket drains), a rated file is cut by
send_timeout only when the client stops reading, gzip streams a file
chunked and whole, a .gz sibling goes with its own length, and expires is
on the head.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from twisted.internet.testing import StringTransport

from support import MemoryProxy, load_text
from wstunnel.net.fileserve import CHUNK

CONF = """
http {
    access_log off;
    server {
        listen 127.0.0.1:8080;
        root %s;
        send_timeout 5s;
        location /r/ { limit_rate 10k; limit_rate_after 20k; }
        location /z/ { gzip on; gzip_types text/plain; }
        location /s/ { gzip_static on; }
        location /e/ { expires 1h; }
    }
}
"""
RATE = 10 * 1024
FREE = 20 * 1024
BIG = 3 * CHUNK + 1000


def get(path: str, extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: files.test\r\n%s\r\n" % (path.encode(), extra)


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    for name in ("r", "z", "s", "e"):
        (root / name).mkdir(parents=True)
    (root / "r" / "big.bin").write_bytes(os.urandom(100 * 1024))
    (root / "z" / "big.bin").write_bytes(b"compressible " * (BIG // 13))
    (root / "s" / "t.txt").write_bytes(b"plain text\n" * 50)
    (root / "s" / "t.txt.gz").write_bytes(gzip.compress(b"plain text\n" * 50))
    (root / "e" / "t.txt").write_bytes(b"expiring\n")
    return root


@pytest.fixture
def proxy(tmp_path: Path, www: Path) -> MemoryProxy:
    return MemoryProxy(load_text(tmp_path / "t.conf", CONF % www))


def body_of(data: bytes) -> bytes:
    return data.partition(b"\r\n\r\n")[2]


def dechunk(data: bytes) -> bytes:
    out, rest = [], data
    for _ in range(10_000):
        size, _, rest = rest.partition(b"\r\n")
        length = int(size, 16)
        if not length:
            return b"".join(out)
        out.append(rest[:length])
        rest = rest[length + 2 :]
    raise AssertionError("no last chunk")


def drained(proxy: MemoryProxy, raw: bytes) -> StringTransport:
    """The client's transport once the file's producer has been asked for everything."""
    proxy.connect_client(raw)
    ct = proxy.ct
    for _ in range(100):
        if ct.producer is None:
            return ct
        ct.producer.resumeProducing()
    raise AssertionError("the producer never finished")


def test_limit_rate_holds_a_file_to_its_rate_after_the_free_bytes(proxy: MemoryProxy, www: Path) -> None:
    proxy.connect_client(get("/r/big.bin"))
    ct = proxy.ct
    start = len(ct.value())
    sent_at = []
    for _ in range(200):
        if ct.producer is None:
            break
        ct.producer.resumeProducing()  # the socket drains as fast as it is asked
        ct.producer is not None and ct.producer.resumeProducing()
        sent_at.append((proxy.reactor.seconds(), len(ct.value()) - start))
        proxy.reactor.advance(0.25)
    assert body_of(ct.value()) == (www / "r" / "big.bin").read_bytes()
    elapsed = sent_at[-1][0]
    # 100 KiB, the first 20 KiB free and a second's bucket: about 7 s at 10 KiB/s, never much less.
    assert (100 * 1024 - FREE - RATE) / RATE <= elapsed <= (100 * 1024 - FREE) / RATE + 1
    for (t0, n0), (t1, n1) in zip(sent_at, sent_at[1:]):
        if n0 >= FREE + RATE:
            assert n1 - n0 <= RATE * (t1 - t0) + RATE


def test_a_rated_file_is_not_cut_while_it_waits_for_its_bucket(proxy: MemoryProxy, www: Path) -> None:
    proxy.connect_client(get("/r/big.bin"))
    ct = proxy.ct
    for _ in range(200):
        if ct.producer is None:
            break
        ct.producer.resumeProducing()
        proxy.reactor.advance(1)
    assert not ct.disconnecting and body_of(ct.value()) == (www / "r" / "big.bin").read_bytes()


def test_a_rated_file_whose_client_stops_reading_is_cut_after_send_timeout(proxy: MemoryProxy) -> None:
    proxy.connect_client(get("/r/big.bin"))
    proxy.ct.producer.resumeProducing()
    proxy.reactor.advance(5.5)
    assert proxy.ct.disconnecting and proxy.ct.producer is None
    assert all(not call.active() for call in proxy.reactor.getDelayedCalls())


def test_gzip_streams_a_file_chunked_and_whole(proxy: MemoryProxy, www: Path) -> None:
    ct = drained(proxy, get("/z/big.bin", b"Accept-Encoding: gzip\r\n"))
    head = ct.value().partition(b"\r\n\r\n")[0]
    assert b"Transfer-Encoding: chunked" in head and b"Content-Encoding: gzip" in head
    assert b"Content-Length" not in head and b"Accept-Ranges" not in head and b'ETag: W/"' in head
    assert gzip.decompress(dechunk(body_of(ct.value()))) == (www / "z" / "big.bin").read_bytes()
    assert not ct.disconnecting


def test_a_gz_sibling_goes_with_its_own_length(proxy: MemoryProxy, www: Path) -> None:
    ct = drained(proxy, get("/s/t.txt", b"Accept-Encoding: gzip\r\n"))
    sibling = (www / "s" / "t.txt.gz").read_bytes()
    head = ct.value().partition(b"\r\n\r\n")[0]
    assert b"Content-Length: %d" % len(sibling) in head and b"Content-Encoding: gzip" in head
    assert b"Content-Type: text/plain" in head and body_of(ct.value()) == sibling


def test_expires_is_on_a_file_head(proxy: MemoryProxy) -> None:
    proxy.connect_client(get("/e/t.txt"))
    head = proxy.ct.value().partition(b"\r\n\r\n")[0]
    assert b"Cache-Control: max-age=3600" in head and b"\r\nExpires: " in head
