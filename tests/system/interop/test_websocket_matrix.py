"""
Real WebSocket clients against real WebSocket servers, directly and
through wstunnel: every scenario a client's API can express, against every
scripted server (see ``scripted.py`` for the commands and reports).  What
reached the server is read back from the server itself, never from the
client under test.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any, Awaitable, Callable

import attrs
import pytest
import pytest_twisted
from twisted.internet import defer
from websockets.asyncio.client import connect

from cdp import Browser
from scripted import PROTOCOLS, fragment_text
from stack import TRANSPORTS, Stack, Transport
from wsclients import AutobahnClient, ChromiumClient, Client, Conn, NodeClient, WebsocketsClient

CELL_WAIT = 20.0  # a hang fails its cell after this long
SERVERS = ("websockets", "autobahn", "node-ws", "deflate")
MIB = 1024 * 1024


@attrs.define
class Cell:
    client: Client
    server: str
    transport: Transport
    stack: Stack
    opened: list[Conn] = attrs.Factory(list)

    async def open(self) -> tuple[Conn, str]:
        cid = uuid.uuid4().hex
        url = self.stack.ws_url(self.transport, self.server, cid)
        conn = await self.client.open(url, list(reversed(PROTOCOLS)))
        self.opened.append(conn)
        return conn, cid

    async def report(self, cid: str) -> dict[str, Any]:
        """How the server saw connection ``cid`` end (waits for the end)."""
        async with connect(self.stack.report_url(self.server), subprotocols=list(PROTOCOLS), proxy=None) as ws:
            await ws.send(f"!report {cid}")
            return json.loads(await ws.recv())


async def text(cell: Cell) -> None:
    conn, _ = await cell.open()
    for message in ("hello", "wörld ✓", "", "x" * 70_000):
        await conn.send(message)
        assert await conn.recv() == message


async def binary(cell: Cell) -> None:
    conn, _ = await cell.open()
    for message in (bytes(range(256)), b"\x00", b"", bytes(70_000)):
        await conn.send(message)
        assert await conn.recv() == message


async def fragmented_to_client(cell: Cell) -> None:
    conn, _ = await cell.open()
    await conn.send("!fragments 5 3000")
    assert await conn.recv() == "".join(fragment_text(5, 3000))


async def fragmented_to_server(cell: Cell) -> None:
    conn, _ = await cell.open()
    for message in ("".join(fragment_text(7, 1000)), bytes(range(256)) * 40):
        await conn.send(message, fragments=7)
        assert await conn.recv() == message


async def one_mib(cell: Cell) -> None:
    conn, _ = await cell.open()
    message = random.Random(7).randbytes(MIB)
    await conn.send(message)
    assert await conn.recv() == message


async def burst_of_200(cell: Cell) -> None:
    conn, _ = await cell.open()
    for i in range(200):
        await conn.send(f"m{i}")
    assert [await conn.recv() for _ in range(200)] == [f"m{i}" for i in range(200)]
    await conn.send("!burst 200")
    assert [await conn.recv() for _ in range(200)] == [str(i) for i in range(200)]


async def ping_from_client(cell: Cell) -> None:
    conn, _ = await cell.open()
    assert await conn.ping(b"client ping") == b"client ping"
    await conn.send("after ping")
    assert await conn.recv() == "after ping"


async def ping_from_server(cell: Cell) -> None:
    conn, _ = await cell.open()
    await conn.send("!ping server-ping")
    assert await conn.recv() == "pong server-ping"


async def close_from_client(cell: Cell) -> None:
    conn, cid = await cell.open()
    assert await conn.close(4000, "client bye") == (4000, "client bye")
    assert (await cell.report(cid))["close"] == [4000, "client bye"]


async def close_from_server(cell: Cell) -> None:
    conn, cid = await cell.open()
    await conn.send("!close 4001 server bye")
    assert await conn.closed() == (4001, "server bye")
    assert (await cell.report(cid))["close"][0] == 4001  # the client's echo of the close


async def client_reset(cell: Cell) -> None:
    conn, cid = await cell.open()
    await conn.send("before reset")
    assert await conn.recv() == "before reset"
    await conn.abort()
    assert (await cell.report(cid))["close"][0] == 1006


def _extension_params(header: str | None) -> set[frozenset[str]]:
    return {frozenset(p.strip() for p in ext.split(";")) for ext in (header or "").split(",") if ext.strip()}


async def subprotocol_and_deflate(cell: Cell) -> None:
    conn, _ = await cell.open()
    await conn.send("!info")
    server = json.loads(await conn.recv())
    assert conn.protocol in PROTOCOLS
    assert conn.protocol == server["subprotocol"]
    (agreed,) = _extension_params(server["extensions"])
    assert "permessage-deflate" in agreed
    assert _extension_params(conn.extensions) == {agreed}
    message = "compressible " * 10_000
    await conn.send(message)
    assert await conn.recv() == message


# name -> (what the client's API must be able to do, the scenario)
SCENARIOS: dict[str, tuple[frozenset[str], Callable[[Cell], Awaitable[None]]]] = {
    "text": (frozenset(), text),
    "binary": (frozenset(), binary),
    "fragmented-to-client": (frozenset(), fragmented_to_client),
    "fragmented-to-server": (frozenset({"fragment"}), fragmented_to_server),
    "1-mib": (frozenset(), one_mib),
    "burst-200": (frozenset(), burst_of_200),
    "ping-from-client": (frozenset({"ping"}), ping_from_client),
    "ping-from-server": (frozenset(), ping_from_server),
    "close-4000-from-client": (frozenset(), close_from_client),
    "close-4001-from-server": (frozenset(), close_from_server),
    "client-reset-is-1006": (frozenset({"abort"}), client_reset),
    "subprotocol-and-deflate": (frozenset(), subprotocol_and_deflate),
}
CAPABILITIES = {"websockets": WebsocketsClient.can, "autobahn": AutobahnClient.can,
                "node-ws": NodeClient.can, "chromium": ChromiumClient.can}


@pytest.fixture
def cell(request: pytest.FixtureRequest, stack: Stack) -> Cell:
    """The cell's client, built here so the browser starts only when a cell needs it."""
    name, server, transport = (request.node.callspec.params[k] for k in ("client", "server", "transport"))
    if name == "chromium":
        browser: Browser = request.getfixturevalue("browser")
        client: Client = ChromiumClient(browser, stack.http_url(transport, "websockets", "page.html"))
    else:
        client = {"websockets": WebsocketsClient, "autobahn": AutobahnClient, "node-ws": NodeClient}[name](
            stack.ca_path)
    return Cell(client, server, transport, stack)


CELLS = [
    pytest.param(client, server, transport, scenario, id=f"{client}-{server}-{transport.name}-{scenario}")
    for transport in TRANSPORTS
    for client, can in CAPABILITIES.items()
    for server in SERVERS
    for scenario, (needs, _) in SCENARIOS.items()
    if needs <= can
]


async def _run(cell: Cell, scenario: Callable[[Cell], Awaitable[None]]) -> None:
    try:
        await asyncio.wait_for(scenario(cell), CELL_WAIT)
    finally:
        for conn in cell.opened:
            await conn.release()


@pytest.mark.parametrize("client,server,transport,scenario", CELLS)
@pytest_twisted.ensureDeferred
async def test_cell(client: str, server: str, transport: Transport, scenario: str, cell: Cell) -> None:
    await defer.Deferred.fromFuture(asyncio.ensure_future(_run(cell, SCENARIOS[scenario][1])))
