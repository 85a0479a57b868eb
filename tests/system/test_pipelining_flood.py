"""
A pipelining flood against the installed ``twistd wstunnel`` (issue 16):
one raw connection sends ``GET /fN`` heads as fast as the proxy takes them
and never reads an answer.  The proxy holds at most EARLY_DATA_LIMIT ahead
of the request it serves and one unread answer, so its resident memory
(``VmRSS`` in ``/proc/PID/status``) barely moves, and once the flood's
socket closes a fresh client is answered.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest_twisted

from test_lifecycle import STEP, Twistd, fetch, run

FLOOD_SECONDS = 3.0
GROWTH_LIMIT = 8 * 1024 * 1024  # bytes of RSS the flood may add
SAMPLE_EVERY = 0.05  # seconds between two readings of VmRSS

CONF = """\
http {{
    server {{
        listen 127.0.0.1:{port};
        access_log off;
        keepalive_requests 1000000;
        location / {{ proxy_pass http://127.0.0.1:{backend}; }}
    }}
}}
"""

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The backend: one request per connection, answered 200 "ok"."""
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP)
        writer.write(OK)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


def rss(pid: int) -> int:
    """The process's resident set, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


async def flood(port: int, seconds: float) -> int:
    """Pipeline GET heads on one connection for ``seconds``, reading nothing; the bytes the proxy took."""
    loop = asyncio.get_running_loop()
    block = b"".join(b"GET /f%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(2000))
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    sent = 0
    deadline = loop.time() + seconds
    try:
        while (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, block), left)
            except asyncio.TimeoutError:
                break
            sent += len(block)
    finally:
        sock.close()
    return sent


async def highest_rss(pid: int, until: asyncio.Future) -> int:
    """The highest VmRSS seen until ``until`` is done (polled, within the flood's time and a step)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FLOOD_SECONDS + STEP
    highest = rss(pid)
    while not until.done() and loop.time() < deadline:
        await asyncio.wait([until], timeout=SAMPLE_EVERY)
        highest = max(highest, rss(pid))
    return highest


@pytest_twisted.ensureDeferred
async def test_a_pipelining_flood_leaves_memory_flat_and_the_proxy_serving(
    twistd: str, tmp_path: Path, free_port: int
) -> None:
    async def scenario() -> None:
        backend = await asyncio.start_server(answer_ok, "127.0.0.1", 0)
        conf = tmp_path / "flood.conf"
        conf.write_text(CONF.format(port=free_port, backend=backend.sockets[0].getsockname()[1]))
        proxy = await Twistd.start(twistd, conf)
        try:
            await proxy.wait_for(rf"listening on 127\.0\.0\.1:{free_port}\b")
            for _ in range(20):  # warm up: the code paths of a request are loaded before the baseline
                assert (await fetch(free_port, "/warm")).startswith(b"HTTP/1.1 200 ")
            pid = proxy.proc.pid
            baseline = rss(pid)
            flooding = asyncio.ensure_future(flood(free_port, FLOOD_SECONDS))
            highest = await highest_rss(pid, flooding)
            await flooding
            assert highest - baseline < GROWTH_LIMIT, f"RSS grew by {(highest - baseline) / 2**20:.1f} MiB"
            assert (await fetch(free_port, "/after")).startswith(b"HTTP/1.1 200 ")
        finally:
            await proxy.kill()
            backend.close()

    await run(scenario())
