"""
The scripted WebSocket servers of the interop suite, on ``websockets`` and
on autobahn (Twisted); ``peers/node_server.js`` is the same server on
Node's ``ws``.  Every server behaves alike, so one scenario runs against
each of them:

- a message that does not start with ``!`` is echoed with its type;
- ``!info`` answers JSON ``{"subprotocol", "extensions"}``: what the
  server agreed to, so the client can compare it with what it saw;
- ``!burst N`` sends the texts ``"0"`` .. ``"N-1"``;
- ``!fragments N SIZE`` sends one text message in N fragments, fragment
  ``i`` being ``str(i % 10) * SIZE``;
- ``!ping PAYLOAD`` pings and, once the pong arrives, sends ``pong PAYLOAD``;
- ``!close CODE REASON`` closes with that code and reason;
- ``!report ID`` waits (at most ``REPORT_WAIT`` s) until the connection
  opened with ``?id=ID`` has ended and answers ``{"close": [code, reason]}``
  as the server saw it (1006 when no close frame came), or ``null``.

The reports are how a test sees what arrived at the server, without
trusting the client under test to tell.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet import defer
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response

__all__ = ["PROTOCOLS", "PAGE", "fragment_text", "start_websockets", "start_deflate", "start_autobahn"]

PROTOCOLS = ("chat.v2", "chat.v1")
REPORT_WAIT = 5.0
MAX_MESSAGE = 16 * 1024 * 1024
PAGE = (Path(__file__).parent / "peers" / "page.html").read_bytes()


def fragment_text(count: int, size: int) -> list[str]:
    """The fragments ``!fragments count size`` sends, in order."""
    return [str(i % 10) * size for i in range(count)]


class Closures:
    """How each connection of one server ended, by the ``id`` it opened with."""

    def __init__(self) -> None:
        self._ends: dict[str, asyncio.Future] = {}

    def _end(self, cid: str) -> asyncio.Future:
        return self._ends.setdefault(cid, asyncio.get_running_loop().create_future())

    def opened(self, cid: str) -> None:
        self._end(cid)

    def closed(self, cid: str, code: int, reason: str) -> None:
        end = self._end(cid)
        if not end.done():
            end.set_result([code, reason])

    async def report(self, cid: str) -> dict[str, Any]:
        if cid not in self._ends:
            return {"close": None}
        try:
            close = await asyncio.wait_for(asyncio.shield(self._ends[cid]), REPORT_WAIT)
        except TimeoutError:
            close = None
        return {"close": close}


def _cid(path: str) -> str:
    return parse_qs(urlsplit(path).query).get("id", [""])[0]


async def _command(ws: ServerConnection, closures: Closures, text: str) -> None:
    verb, _, rest = text.partition(" ")
    args = rest.split(" ")
    if verb == "!info":
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        await ws.send(json.dumps({"subprotocol": ws.subprotocol, "extensions": extensions}))
    elif verb == "!burst":
        for i in range(int(args[0])):
            await ws.send(str(i))
    elif verb == "!fragments":
        await ws.send(fragment_text(int(args[0]), int(args[1])))
    elif verb == "!ping":
        await (await ws.ping(rest))
        await ws.send(f"pong {rest}")
    elif verb == "!close":
        await ws.close(int(args[0]), " ".join(args[1:]))
    elif verb == "!report":
        await ws.send(json.dumps(await closures.report(args[0])))


def _handler(closures: Closures):
    async def handle(ws: ServerConnection) -> None:
        cid = _cid(ws.request.path)
        closures.opened(cid)
        try:
            async for message in ws:
                if isinstance(message, str) and message.startswith("!"):
                    await _command(ws, closures, message)
                else:
                    await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            closures.closed(cid, ws.close_code, ws.close_reason or "")

    return handle


def _serve_page(connection: ServerConnection, request: Request) -> Response | None:
    """Plain GETs are answered with the browser's test page."""
    if "Upgrade" in request.headers:
        return None
    headers = Headers([("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE))),
                       ("Cache-Control", "no-store")])
    return Response(HTTPStatus.OK, "OK", headers, PAGE)


async def start_websockets() -> Server:
    """The ``websockets`` server with its default permessage-deflate; it also serves the page."""
    return await serve(_handler(Closures()), "127.0.0.1", 0, subprotocols=list(PROTOCOLS),
                       max_size=MAX_MESSAGE, process_request=_serve_page)


def _require_subprotocol(connection: ServerConnection, request: Request) -> Response | None:
    offered = {p.strip() for v in request.headers.get_all("Sec-WebSocket-Protocol") for p in v.split(",")}
    if offered.isdisjoint(PROTOCOLS):
        return connection.respond(HTTPStatus.BAD_REQUEST, "a subprotocol is required\n")
    return None


async def start_deflate() -> Server:
    """
    A server that insists: a subprotocol is required, and permessage-deflate
    is agreed with non-default parameters (no server context takeover, a
    1 KiB server window), so a proxy that touched the extension header or the
    compressed frames would be caught.
    """
    deflate = ServerPerMessageDeflateFactory(server_no_context_takeover=True, server_max_window_bits=10)
    return await serve(_handler(Closures()), "127.0.0.1", 0, subprotocols=list(PROTOCOLS),
                       compression=None, extensions=[deflate], max_size=MAX_MESSAGE,
                       process_request=_require_subprotocol)


class _AutobahnScripted(WebSocketServerProtocol):
    """The scripted server on autobahn's Twisted flavour."""

    def onConnect(self, request: Any) -> str | None:
        self.cid = request.params.get("id", [""])[0]
        self.factory.closures.opened(self.cid)
        return next((p for p in PROTOCOLS if p in request.protocols), None)

    def onOpen(self) -> None:
        self.extensions_sent = self.factory.last_extensions

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not isBinary and payload.startswith(b"!"):
            self._command(payload.decode())
        else:
            self.sendMessage(payload, isBinary)

    def onPong(self, payload: bytes) -> None:
        self.sendMessage(b"pong " + payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if hasattr(self, "cid"):
            self.factory.closures.closed(self.cid, code, reason or "")

    def _command(self, text: str) -> None:
        verb, _, rest = text.partition(" ")
        args = rest.split(" ")
        if verb == "!info":
            info = {"subprotocol": self.websocket_protocol_in_use, "extensions": self.extensions_sent}
            self.sendMessage(json.dumps(info).encode())
        elif verb == "!burst":
            for i in range(int(args[0])):
                self.sendMessage(str(i).encode())
        elif verb == "!fragments":
            self.beginMessage(isBinary=False)
            for part in fragment_text(int(args[0]), int(args[1])):
                self.sendMessageFrame(part.encode())
            self.endMessage()
        elif verb == "!ping":
            self.sendPing(rest.encode())
        elif verb == "!close":
            self.sendClose(int(args[0]), " ".join(args[1:]))
        elif verb == "!report":
            report = defer.Deferred.fromFuture(asyncio.ensure_future(self.factory.closures.report(args[0])))
            report.addCallback(lambda r: self.sendMessage(json.dumps(r).encode()))


class _AutobahnFactory(WebSocketServerFactory):
    protocol = _AutobahnScripted

    def __init__(self) -> None:
        super().__init__()
        self.closures = Closures()
        self.last_extensions: str | None = None
        self.setProtocolOptions(perMessageCompressionAccept=self._accept, maxMessagePayloadSize=MAX_MESSAGE,
                                echoCloseCodeReason=True)

    def _accept(self, offers: list[Any]) -> PerMessageDeflateOfferAccept | None:
        # Called while the 101 is built; onOpen follows in the same call.
        accept = next((PerMessageDeflateOfferAccept(o) for o in offers if isinstance(o, PerMessageDeflateOffer)),
                      None)
        self.last_extensions = accept.get_extension_string() if accept else None
        return accept


def start_autobahn() -> Any:
    """The autobahn server on the suite's reactor; returns its listening port."""
    from twisted.internet import reactor  # installed by pytest-twisted by now, never here

    return reactor.listenTCP(0, _AutobahnFactory(), interface="127.0.0.1")
