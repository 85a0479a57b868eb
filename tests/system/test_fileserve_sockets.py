"""
Files over real loopback sockets, where the producer meets Twisted's TCP
transport and sendfile: a large file arrives whole and intact for a
client that reads slowly, the proxy's transport never holds more than
about one chunk of it meanwhile, the access log counts every byte sent
(by sendfile or not), and keep-alive goes on to the next request; over
TLS, where the file is read and written, it arrives whole too.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest_twisted

from support import aio, read_all_sampling, read_until, slow_reader, start_proxy
from tls_support import client_context
from wstunnel.net.fileserve import CHUNK

CONF = """
http {{
    log_format bytes "$status $bytes_sent $body_bytes_sent";
    server {{
        listen 127.0.0.1:0;
        root {root};
        access_log {log} bytes;
    }}
}}
"""
SIZE = 24 * 1024 * 1024 + 7


def serve(tmp_path: Path) -> tuple[object, int, bytes, Path]:
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(SIZE)
    (root / "big.bin").write_bytes(data)
    (root / "small.txt").write_bytes(b"small\n")
    log = tmp_path / "access.log"
    service, port = start_proxy(tmp_path, CONF.format(root=root, log=log))
    return service, port, data, log


def held(service: object) -> int:
    """The bytes Twisted's client transports hold, summed over every open client connection."""
    registry = service.registry  # type: ignore[attr-defined]
    total = 0
    for client in list(registry.clients):
        transport = client.transport
        total += len(transport.dataBuffer) - transport.offset + sum(map(len, transport._tempDataBuffer))
    return total


@pytest_twisted.ensureDeferred
async def test_a_large_file_reaches_a_slow_reader_whole_with_one_chunk_held(tmp_path: Path) -> None:
    service, port, data, log = serve(tmp_path)
    try:
        sock = await aio(slow_reader(port, b"GET /big.bin HTTP/1.1\r\nHost: f\r\n\r\n"))
        peaks = []

        async def read() -> str:
            await asyncio.sleep(0)
            head = b""
            loop = asyncio.get_running_loop()
            while b"\r\n\r\n" not in head:
                head += await loop.sock_recv(sock, 4096)
            head, _, rest = head.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: %d" % SIZE in head
            return await read_all_sampling(sock, SIZE, rest, lambda: peaks.append(held(service)))

        digest = await aio(read())
        assert digest == hashlib.sha256(data).hexdigest()
        assert max(peaks) <= 2 * CHUNK
        sock.setblocking(True)
        sock.sendall(b"GET /small.txt HTTP/1.1\r\nHost: f\r\n\r\n")
        answer = await aio(asyncio.to_thread(lambda: sock.recv(4096)))
        assert answer.endswith(b"\r\n\r\nsmall\n")
        sock.close()
        lines = log.read_text().splitlines()
        status, sent, body = lines[0].split()
        assert (status, int(body)) == ("200", SIZE) and int(sent) > SIZE
        assert lines[1].split()[2] == "6"
    finally:
        service.stopService()  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_many_small_files_over_one_connection(tmp_path: Path) -> None:
    service, port, _, _ = serve(tmp_path)
    try:

        async def session() -> list[bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            bodies = []
            for _ in range(50):
                writer.write(b"GET /small.txt HTTP/1.1\r\nHost: f\r\n\r\n")
                head = await read_until(reader, b"\r\n\r\n")
                assert b"Content-Length: 6" in head
                bodies.append(await reader.readexactly(6))
            writer.close()
            return bodies

        assert await aio(session()) == [b"small\n"] * 50
    finally:
        service.stopService()  # type: ignore[attr-defined]


TLS_CONF = """
http {{
    server {{
        listen 127.0.0.1:0 ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
        access_log off;
    }}
}}
"""


@pytest_twisted.ensureDeferred
async def test_a_large_file_over_tls_is_read_and_written_whole(tmp_path: Path, proxies, ca) -> None:
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(3 * 1024 * 1024 + 5)
    (root / "big.bin").write_bytes(data)
    cert, key = ca.issue("files", ["127.0.0.1"])
    port = proxies(TLS_CONF.format(cert=cert, key=key, root=root))

    async def fetch() -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca.path),
                                                       server_hostname="127.0.0.1")
        writer.write(b"GET /big.bin HTTP/1.1\r\nHost: f\r\n\r\n")
        head = await read_until(reader, b"\r\n\r\n")
        body = await reader.readexactly(len(data))
        writer.close()
        return head, body

    head, body = await aio(fetch())
    assert head.startswith(b"HTTP/1.1 200 OK") and body == data
