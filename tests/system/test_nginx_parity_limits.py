"""
nginx 1.22 as the oracle for limit_req and limit_conn (issue 15): one
config served by both, clients from different loopback addresses, the
statuses compared request by request.  The rate is 1r/m, so no bucket
drains during a test and the pattern is deterministic.
"""

from __future__ import annotations

import asyncio

import pytest_twisted

from nginx_support import Response, read_response, request
from support import WAIT, aio, switching, upgrade_request

LIMITS = """
limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=two:1m rate=1r/m;
limit_conn_zone $binary_remote_addr zone=addr:1m;
server {
    listen {listen};
    location /nodelay { limit_req zone=one burst=2 nodelay; proxy_pass http://127.0.0.1:{backend}; }
    location /status {
        limit_req zone=two;
        limit_req_status 429;
        proxy_pass http://127.0.0.1:{backend};
    }
    location /dry { limit_req zone=two; limit_req_dry_run on; proxy_pass http://127.0.0.1:{backend}; }
    location /ws {
        limit_conn addr 2;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_pass http://127.0.0.1:{backend};
    }
}
"""


async def ask_from(host: str, port: int, head: bytes) -> tuple[Response, asyncio.StreamWriter]:
    """``head`` sent from the loopback address ``host``; the answer and the connection, left open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0))
    writer.write(head)
    return await asyncio.wait_for(read_response(reader), WAIT), writer


async def statuses(host: str, port: int, path: str, count: int) -> list[int]:
    found = []
    for _ in range(count):
        response, writer = await ask_from(host, port, request(path))
        writer.close()
        found.append(int(response.status.split()[1]))
    return found


async def limit_req_pattern(port: int) -> list[list[int]]:
    return [
        await statuses("127.0.0.2", port, "/nodelay", 5),
        await statuses("127.0.0.5", port, "/nodelay", 1),
        await statuses("127.0.0.2", port, "/status", 2),
        await statuses("127.0.0.2", port, "/dry", 2),
    ]


@pytest_twisted.ensureDeferred
async def test_limit_req_burst_nodelay_status_and_dry_run_as_nginx(twins) -> None:
    sides = twins.start(LIMITS)
    seen = {side.name: await aio(limit_req_pattern(side.port)) for side in sides}
    assert seen["wstunnel"] == seen["nginx"]
    assert seen["nginx"] == [[200, 200, 200, 503, 503], [200], [200, 429], [200, 200]]


async def tunnels_pattern(port: int) -> list[int]:
    """Two tunnels from 127.0.0.2, a third refused, one from 127.0.0.5 served."""
    found, writers = [], []
    try:
        for host in ("127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.5"):
            response, writer = await ask_from(host, port, upgrade_request("/ws"))
            writers.append(writer)
            found.append(int(response.status.split()[1]))
    finally:
        for writer in writers:
            writer.close()
    return found


@pytest_twisted.ensureDeferred
async def test_limit_conn_counts_open_tunnels_per_address_as_nginx(twins) -> None:
    sides = twins.start(LIMITS, answer=switching())
    seen = {side.name: await aio(tunnels_pattern(side.port)) for side in sides}
    assert seen["wstunnel"] == seen["nginx"] == [101, 101, 503, 101]
    for side in sides:
        assert len(side.backend.heads) == 3, "the refused upgrade never reached the backend"
