"""
The demo backend in-process on an ephemeral port.  The suite runs Twisted on
the asyncio reactor, so each test hands its asyncio scenario to the shared
loop through ``support.aio``.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest_twisted
from support import ROOT, aio
from websockets.asyncio.client import connect

from wstunnel.demo.backend import start
from wstunnel.config.loader import load_config


async def on_backend(check: Callable[[int], Awaitable[None]]) -> None:
    """Run ``check(port)`` against a fresh backend."""
    server = await start("127.0.0.1", 0)
    async with server:
        await check(server.sockets[0].getsockname()[1])


async def http_get(port: int, path: str) -> tuple[str, list[tuple[str, str]], str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    status, *lines = head.split("\r\n")
    headers = [(k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    return status, headers, body


@pytest_twisted.ensureDeferred
async def test_echo() -> None:
    async def check(port: int) -> None:
        async with connect(f"ws://127.0.0.1:{port}/echo/", proxy=None) as ws:
            for message in ("hello", "wörld", b"\x00\xff"):
                await ws.send(message)
                assert await ws.recv() == message

    await aio(on_backend(check))


@pytest_twisted.ensureDeferred
async def test_chat_broadcasts_to_everyone() -> None:
    async def check(port: int) -> None:
        url = f"ws://127.0.0.1:{port}/chat/"
        async with connect(url, proxy=None) as alice:
            # Each joiner's own message coming back proves the server has
            # registered it, so the order of everything below is fixed.
            await alice.send("alice: hi")
            assert await alice.recv() == "alice: hi"
            async with connect(url, proxy=None) as bob:
                await bob.send("bob: hi")
                assert await bob.recv() == "bob: hi"
                assert await alice.recv() == "bob: hi"
                await alice.send("alice: hello")
                assert await alice.recv() == "alice: hello"
                assert await bob.recv() == "alice: hello"

    await aio(on_backend(check))


@pytest_twisted.ensureDeferred
async def test_page() -> None:
    async def check(port: int) -> None:
        status, headers, body = await http_get(port, "/")
        assert status == "HTTP/1.1 200 OK"
        assert [v for k, v in headers if k == "content-type"] == ["text/html; charset=utf-8"]
        assert [int(v) for k, v in headers if k == "content-length"] == [len(body.encode())]
        assert "(location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path" in body
        assert "'/echo/'" in body
        assert "'/chat/'" in body

    await aio(on_backend(check))


@pytest_twisted.ensureDeferred
async def test_page_ignores_query_string() -> None:
    async def check(port: int) -> None:
        status, _, _ = await http_get(port, "/?from=test")
        assert status == "HTTP/1.1 200 OK"

    await aio(on_backend(check))


@pytest_twisted.ensureDeferred
async def test_unknown_path_is_404() -> None:
    async def check(port: int) -> None:
        status, _, _ = await http_get(port, "/nothing")
        assert status == "HTTP/1.1 404 Not Found"

    await aio(on_backend(check))


def test_demo_config_proxies_8080_to_the_backend() -> None:
    config = load_config(str(ROOT / "doc" / "examples" / "demo.conf"))
    assert [(b.host, b.port) for b in config.bindings] == [("127.0.0.1", 8080)]
    (location,) = config.bindings[0].default.locations
    assert location.path == "/"
    peers = location.proxy_pass.upstream.peers
    assert [(p.host, p.port) for p in peers] == [("127.0.0.1", 8282)]
