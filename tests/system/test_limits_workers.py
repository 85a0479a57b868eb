"""
limit_conn across ``worker_processes 2`` (issue 15): the installed twistd
with two workers sharing one zone.  One client (127.0.0.2) opens tunnels
up to its limit and every further upgrade is refused, whichever worker the
kernel hands it to; another client (127.0.0.5) is still served.  With a
zone per worker the client would get up to twice its limit, and some of
the further attempts, spread over both workers by SO_REUSEPORT, would
succeed.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest_twisted
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from test_lifecycle import STEP, Twistd, ask, run, tagged_echo

LIMIT = 4
ATTEMPTS = 16

CONF = """\
worker_processes 2;
worker_shutdown_timeout 1s;
http {{
    limit_conn_zone $binary_remote_addr zone=addr:1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            limit_conn addr {limit};
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}
}}
"""


def open_from(host: str, port: int):  # type: ignore[no-untyped-def]
    return connect(f"ws://127.0.0.1:{port}/", proxy=None, local_addr=(host, 0), open_timeout=STEP)


async def refused_from(host: str, port: int) -> int:
    """The status an upgrade from ``host`` is refused with."""
    try:
        async with open_from(host, port):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


@pytest_twisted.ensureDeferred
async def test_limit_conn_holds_across_two_workers(twistd: str, tmp_path: Path, free_port: int) -> None:
    async def scenario() -> None:
        backend = await tagged_echo("A")
        conf = tmp_path / "ws.conf"
        conf.write_text(CONF.format(port=free_port, limit=LIMIT, backend=backend.sockets[0].getsockname()[1]))
        proxy = await Twistd.start(twistd, conf)
        tunnels = []
        try:
            await proxy.wait_for(r"started worker process (\d+) \(#(\d)\)", 2)
            await proxy.wait_for(rf"listening on 127\.0\.0\.1:{free_port}\b", 2)
            for n in range(LIMIT):
                ws = await open_from("127.0.0.2", free_port).__aenter__()
                tunnels.append(ws)
                assert await ask(ws, str(n)) == f"A:{n}"
            refusals = [await refused_from("127.0.0.2", free_port) for _ in range(ATTEMPTS)]
            assert refusals == [503] * ATTEMPTS
            async with open_from("127.0.0.5", free_port) as other:
                assert await ask(other, "other") == "A:other"
            for n, ws in enumerate(tunnels):
                assert await ask(ws, f"still {n}") == f"A:still {n}"
        finally:
            for ws in tunnels:
                await asyncio.wait_for(ws.close(), STEP)
            proxy.signal(signal.SIGTERM)
            await proxy.exit_code()
            await proxy.kill()
            backend.close()
        assert "Traceback" not in "".join(proxy.lines)
        output = "".join(proxy.lines)
        assert output.count('#error] limiting connections by zone "addr", client: 127.0.0.2\n') == ATTEMPTS

    await run(scenario())
