"""
The demo backend: a small ``websockets`` server to put wstunnel in front of.

``/echo/`` echoes every message, ``/chat/`` broadcasts every message to
everyone connected, and a plain ``GET /`` returns a page that uses both
through whatever host served it, so the page works unchanged behind the
proxy (ws:// or wss://, any port).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from http import HTTPStatus
from importlib.resources import files
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

__all__ = ["main", "start"]

PAGE = files(__package__).joinpath("page.html").read_text(encoding="utf-8")


def _path(request: Request) -> str:
    return urlsplit(request.path).path


def _is_upgrade(request: Request) -> bool:
    return "upgrade" in request.headers.get("Connection", "").lower()


class _Backend:
    def __init__(self) -> None:
        self.chatters: set[ServerConnection] = set()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP requests; let WebSocket handshakes on the two endpoints proceed."""
        path = _path(request)
        if path == "/" and not _is_upgrade(request):
            response = connection.respond(HTTPStatus.OK, PAGE)
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "text/html; charset=utf-8"
            return response
        if path in ("/echo/", "/chat/"):
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")

    async def handler(self, connection: ServerConnection) -> None:
        if _path(connection.request) == "/echo/":
            async for message in connection:
                await connection.send(message)
            return
        self.chatters.add(connection)
        try:
            async for message in connection:
                broadcast(self.chatters, message)
        finally:
            self.chatters.discard(connection)


async def start(host: str, port: int) -> Server:
    """A running backend on ``host:port`` (0 picks a free port)."""
    backend = _Backend()
    return await serve(backend.handler, host, port, process_request=backend.process_request)


async def _run(host: str, port: int) -> None:
    server = await start(host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    print(f"wstunnel-demo: backend on http://{host}:{port}/ (/echo/, /chat/)", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="wstunnel-demo", description="WebSocket echo and chat backend for the wstunnel demo"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8282)
    args = parser.parse_args(argv)
    asyncio.run(_run(args.host, args.port))
