"""
net.fileserve on the in-memory harness: a file is read only when the
client's transport asks for more (one chunk per drain, so one slow
download holds one chunk), ``send_timeout`` cuts a client that stops
reading, a file that shrinks ends the connection, one deleted meanwhile
is still sent whole, keep-alive goes on after a file, and a file the
worker may not open is a 403.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from support import MemoryProxy, load_text
from wstunnel.net import fileserve
from wstunnel.net.fileserve import CHUNK

CONF = """
http {
    access_log off;
    server {
        listen 127.0.0.1:8080;
        root %s;
        send_timeout 5s;
    }
}
"""
BIG = 3 * CHUNK + 1000


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: files.test\r\n\r\n".encode()


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(BIG))
    (root / "small.txt").write_bytes(b"small\n")
    return root


@pytest.fixture
def proxy(tmp_path: Path, www: Path) -> MemoryProxy:
    return MemoryProxy(load_text(tmp_path / "t.conf", CONF % www))


def split(data: bytes) -> tuple[bytes, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def drain(proxy: MemoryProxy, limit: int = 100) -> list[int]:
    """Ask the registered producer for more until it unregisters; the bytes written by each call."""
    ct = proxy.ct
    sizes = []
    for _ in range(limit):
        if ct.producer is None:
            return sizes
        before = len(ct.value())
        ct.producer.resumeProducing()
        sizes.append(len(ct.value()) - before)
    raise AssertionError("the producer never finished")


def test_a_large_file_is_read_one_chunk_per_drain(proxy: MemoryProxy, www: Path) -> None:
    proxy.connect_client(get("/big.bin"))
    head, body = split(proxy.ct.value())
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: %d" % BIG in head and body == b""
    assert proxy.ct.streaming is False
    sizes = drain(proxy)
    assert max(sizes) <= CHUNK and sizes[:3] == [CHUNK] * 3
    assert split(proxy.ct.value())[1] == (www / "big.bin").read_bytes()
    assert not proxy.ct.disconnecting


def test_keep_alive_goes_on_after_a_file(proxy: MemoryProxy) -> None:
    client, ct = proxy.connect_client(get("/small.txt"))
    drain(proxy)
    ct.clear()
    client.dataReceived(get("/small.txt"))
    drain(proxy)
    assert split(ct.value())[1] == b"small\n" and not ct.disconnecting


def test_head_sends_the_length_and_no_body(proxy: MemoryProxy) -> None:
    proxy.connect_client(get("/big.bin", "HEAD"))
    head, body = split(proxy.ct.value())
    assert b"Content-Length: %d" % BIG in head and body == b"" and proxy.ct.producer is None


def test_a_client_that_stops_reading_is_cut_after_send_timeout(proxy: MemoryProxy) -> None:
    proxy.connect_client(get("/big.bin"))
    proxy.ct.producer.resumeProducing()
    proxy.reactor.advance(4)
    proxy.ct.producer.resumeProducing()
    proxy.reactor.advance(4)
    assert not proxy.ct.disconnecting
    proxy.reactor.advance(1.5)
    assert proxy.ct.disconnecting and proxy.ct.producer is None
    assert not proxy.reactor.getDelayedCalls() or all(not c.active() for c in proxy.reactor.getDelayedCalls()
                                                       if "_check" in repr(c))


def test_a_file_that_shrinks_while_sent_ends_the_connection(proxy: MemoryProxy, www: Path) -> None:
    proxy.connect_client(get("/big.bin"))
    proxy.ct.producer.resumeProducing()
    os.truncate(www / "big.bin", CHUNK + 10)
    drain(proxy)
    assert len(split(proxy.ct.value())[1]) == CHUNK + 10
    assert proxy.ct.disconnecting


def test_a_file_deleted_while_sent_is_sent_whole(proxy: MemoryProxy, www: Path) -> None:
    data = (www / "big.bin").read_bytes()
    proxy.connect_client(get("/big.bin"))
    proxy.ct.producer.resumeProducing()
    (www / "big.bin").unlink()
    (www / "big.bin").write_bytes(b"replaced")
    drain(proxy)
    assert split(proxy.ct.value())[1] == data and not proxy.ct.disconnecting


def test_a_client_gone_mid_file_closes_the_descriptor(proxy: MemoryProxy) -> None:
    before = len(os.listdir("/proc/self/fd"))
    client, ct = proxy.connect_client(get("/big.bin"))
    ct.producer.resumeProducing()
    assert len(os.listdir("/proc/self/fd")) == before + 1
    ct.producer.stopProducing()
    client.connectionLost()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_file_that_may_not_be_opened_is_403(proxy: MemoryProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str, flags: int, *args: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(fileserve.os, "open", refuse)
    proxy.connect_client(get("/small.txt"))
    assert proxy.ct.value().startswith(b"HTTP/1.1 403 Forbidden")


def test_a_range_and_a_304_through_the_protocol(proxy: MemoryProxy, www: Path) -> None:
    client, ct = proxy.connect_client(get("/big.bin")[:-2] + b"Range: bytes=10-19\r\n\r\n")
    drain(proxy)
    head, body = split(ct.value())
    assert head.startswith(b"HTTP/1.1 206") and body == (www / "big.bin").read_bytes()[10:20]
    tag = next(line for line in head.split(b"\r\n") if line.startswith(b"ETag: "))[6:]
    ct.clear()
    client.dataReceived(get("/big.bin")[:-2] + b"If-None-Match: " + tag + b"\r\n\r\n")
    head, body = split(ct.value())
    assert head.startswith(b"HTTP/1.1 304") and b"Content-Length" not in head and ct.producer is None
