"""
The python-socketio client against python-socketio servers (ASGI under
uvicorn), directly and through wstunnel's ``upstream socketio`` (three
backends, ``ip_hash``), over ws and wss: long-polling only, polling
upgraded to a WebSocket on the same ``/socket.io/`` path, and WebSocket
only, each with a burst of 200 server pushes received in order.  The server
says which backend and session it is and which transports it saw the
session use.

Stickiness: an engine.io session lives in one backend process, so a request
of the session that reached another backend would be refused (unknown
``sid``) and the session would fail.  On top of that, every ``whoami`` of a
session must name one backend, and the polling-then-upgrade session's
backend saw both its polling handshake and its WebSocket.  ip_hash hashes the
first three octets of the client's IPv4 address, so each session connects
from its own loopback address 127.0.N.1 (aiohttp's ``local_addr``) and the
``ip-hash-spread`` scenario checks that sessions from six such addresses
reach all three backends, each session staying on its own.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from typing import Any

import aiohttp
import pytest
import pytest_twisted
import socketio
from engineio.payload import Payload
from twisted.internet import defer

from stack import SOCKETIO_BACKENDS, TRANSPORTS, Stack, Transport

CELL_WAIT = 20.0
PUSHED = 200  # server pushes the client must receive in order
SPREAD = 6  # sessions, from as many client addresses, for ip-hash-spread
# python-engineio's client drops the connection on a long-poll response of
# more than 16 packets (Payload.max_decode_packets, a guard of its own), and
# its server answers a long-poll with everything queued: a burst over
# polling needs a larger limit in the client.  See tests/system/interop/README.md.
DECODE_PACKETS = 2 * PUSHED

# scenario -> (the client's transports, what the server saw first, what it sees after connect)
SESSIONS = {
    "polling-only": (["polling"], "polling", "polling"),
    "polling-then-upgrade": (["polling", "websocket"], "polling", "websocket"),
    "websocket-only": (["websocket"], "websocket", "websocket"),
}
_addresses = (f"127.0.{n}.1" for n in itertools.count(SPREAD + 1))  # a fresh one for each session cell


@pytest.fixture(autouse=True)
def decode_packets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Payload, "max_decode_packets", DECODE_PACKETS)


def _http_session(stack: Stack, transport: Transport, source: str) -> Any:
    """A factory of the client's aiohttp sessions: from ``source``, trusting the test CA for https/wss."""
    context = ssl.create_default_context(cafile=stack.ca_path) if transport.scheme == "wss" else None

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, local_addr=(source, 0)))

    return session


async def _connect(
    stack: Stack, transport: Transport, transports: list[str], source: str
) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False, http_session=_http_session(stack, transport, source))
    url = f"{transport.http_scheme}://127.0.0.1:{stack.port(transport, 'socketio')}"
    await client.connect(url, transports=transports, socketio_path="/socket.io/", wait_timeout=5)
    return client


async def _close(client: socketio.AsyncClient) -> None:
    # A polling client's graceful disconnect waits for its pending long-poll
    # GET, which python-engineio's server leaves open until the client's read
    # timeout (21 s), with or without a proxy: close without that wait.
    await client.eio.disconnect(abort=True)


def _backends(transport: Transport) -> set[str]:
    return set(SOCKETIO_BACKENDS) if transport.via_proxy else {"socketio"}


async def _session(stack: Stack, transport: Transport, scenario: str, source: str) -> str:
    """One session of ``scenario`` from client address ``source``; the backend that served all of it."""
    transports, first, now = SESSIONS[scenario]
    pushed: asyncio.Queue[int] = asyncio.Queue()
    client = await _connect(stack, transport, transports, source)
    client.on("pushed", pushed.put)
    try:
        assert client.transport() == now
        seen = await client.call("whoami", timeout=5)
        assert seen["backend"] in _backends(transport)
        assert seen == {"backend": seen["backend"], "sid": client.get_sid(), "first": first, "now": now}
        await client.emit("push", PUSHED)
        assert [await pushed.get() for _ in range(PUSHED)] == list(range(PUSHED))
        assert await client.call("whoami", timeout=5) == seen
        return seen["backend"]
    finally:
        await _close(client)


async def _spread(stack: Stack, transport: Transport) -> None:
    sessions = [_session(stack, transport, "polling-then-upgrade", f"127.0.{n}.1") for n in range(1, SPREAD + 1)]
    assert set(await asyncio.gather(*sessions)) == set(SOCKETIO_BACKENDS)


CELLS = [
    pytest.param(scenario, transport, id=f"{transport.name}-{scenario}")
    for transport in TRANSPORTS
    for scenario in (*SESSIONS, *(("ip-hash-spread",) if transport.via_proxy else ()))
]


@pytest.mark.parametrize("client,server", [("python-socketio", "python-socketio")], ids=["python-socketio"])
@pytest.mark.parametrize("scenario,transport", CELLS)
@pytest_twisted.ensureDeferred
async def test_socketio(client: str, server: str, transport: Transport, scenario: str, stack: Stack) -> None:
    if scenario == "ip-hash-spread":
        run = _spread(stack, transport)
    else:
        run = _session(stack, transport, scenario, next(_addresses))
    cell = asyncio.wait_for(run, CELL_WAIT)
    await defer.Deferred.fromFuture(asyncio.ensure_future(cell))
