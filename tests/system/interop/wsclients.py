"""
The WebSocket clients of the interop suite behind one small interface, so
each scenario is written once: ``websockets`` and autobahn in-process, Node's
``ws`` and headless Chromium driven remotely (``peers/node_client.js``,
``peers/page.html``) with base64 for binary payloads.

Each client is given the run's test CA (``ca_path``) and trusts it for wss
URLs the way its own API does: an ``ssl.SSLContext`` for ``websockets``,
``optionsForClientTLS`` with the CA as trust root for autobahn, Node's
``ca`` option; Chromium is launched with a test-only trust switch instead
(``cdp.trust_flag``).

A client lists what its API can do in ``can``: a browser cannot ping, send
fragments or reset its TCP connection, so those scenarios are not in its row.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import struct
from pathlib import Path
from typing import Any, Protocol

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateResponse,
    PerMessageDeflateResponseAccept,
)
from twisted.internet import defer
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.protocols.tls import TLSMemoryBIOProtocol
from websockets.asyncio.client import ClientConnection, connect

from cdp import Browser
from scripted import MAX_MESSAGE

__all__ = ["Conn", "Client", "WebsocketsClient", "AutobahnClient", "NodeClient", "ChromiumClient", "NODE_ENV"]

PEERS = Path(__file__).parent / "peers"
# Debian's node modules; Debian's own nodejs searches there anyway.
NODE_ENV = {**os.environ, "NODE_PATH": "/usr/share/nodejs"}
Message = str | bytes


class Conn(Protocol):
    """One open WebSocket connection of a client under test."""

    protocol: str | None  # the subprotocol the client agreed to
    extensions: str | None  # the Sec-WebSocket-Extensions the client accepted

    async def send(self, data: Message, fragments: int = 1) -> None: ...
    async def recv(self) -> Message: ...
    async def ping(self, payload: bytes) -> bytes: ...
    async def close(self, code: int, reason: str) -> tuple[int, str]: ...
    async def closed(self) -> tuple[int, str]: ...
    async def abort(self) -> None: ...
    async def release(self) -> None: ...


class Client(Protocol):
    name: str
    can: frozenset[str]

    async def open(self, url: str, protocols: list[str]) -> Conn: ...


def _split(data: Message, count: int) -> list[Message]:
    step = -(-len(data) // count)
    return [data[i:i + step] for i in range(0, len(data), step)]


def _reset_on_close(sock: Any) -> None:
    """SO_LINGER 0: closing sends RST instead of FIN, as a crashed peer would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _WebsocketsConn:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.protocol = ws.subprotocol
        self.extensions = ws.response.headers.get("Sec-WebSocket-Extensions")

    async def send(self, data: Message, fragments: int = 1) -> None:
        await self.ws.send(_split(data, fragments) if fragments > 1 else data)

    async def recv(self) -> Message:
        return await self.ws.recv()

    async def ping(self, payload: bytes) -> bytes:
        await (await self.ws.ping(payload))
        return payload  # websockets only resolves the waiter on a pong with this payload

    async def close(self, code: int, reason: str) -> tuple[int, str]:
        await self.ws.close(code, reason)
        return self.ws.close_code, self.ws.close_reason

    async def closed(self) -> tuple[int, str]:
        await self.ws.wait_closed()
        return self.ws.close_code, self.ws.close_reason

    async def abort(self) -> None:
        _reset_on_close(self.ws.transport.get_extra_info("socket"))
        self.ws.transport.abort()

    async def release(self) -> None:
        self.ws.transport.abort()


def _secure(url: str) -> bool:
    return url.startswith("wss:")


class WebsocketsClient:
    name = "websockets"
    can = frozenset({"fragment", "ping", "abort"})

    def __init__(self, ca_path: str) -> None:
        self.ca_path = ca_path

    async def open(self, url: str, protocols: list[str]) -> Conn:
        context = ssl.create_default_context(cafile=self.ca_path) if _secure(url) else None
        ws = await connect(url, subprotocols=protocols, max_size=MAX_MESSAGE, proxy=None, ssl=context)
        return _WebsocketsConn(ws)


def _wait(d: defer.Deferred) -> asyncio.Future:
    return d.asFuture(asyncio.get_running_loop())


def _tcp(transport: Any) -> Any:
    """The TCP connection under a Twisted transport: under the TLS layer for wss.

    Aborting that one is a reset whatever state TLS is in; aborting the TLS
    layer of a connection already lost raises.
    """
    return transport.transport if isinstance(transport, TLSMemoryBIOProtocol) else transport


class _AutobahnConn(WebSocketClientProtocol):
    def onConnect(self, response: Any) -> None:
        self.protocol = response.protocol
        self.extensions = response.headers.get("sec-websocket-extensions")
        self.inbox: defer.DeferredQueue = defer.DeferredQueue()
        self.pongs: defer.DeferredQueue = defer.DeferredQueue()
        self.ended: defer.Deferred = defer.Deferred()

    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.inbox.put(payload if isBinary else payload.decode())

    def onPong(self, payload: bytes) -> None:
        self.pongs.put(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"handshake failed: {reason}"))
        elif not self.ended.called:
            self.ended.callback((code, reason or ""))

    async def send(self, data: Message, fragments: int = 1) -> None:
        binary = isinstance(data, bytes)
        payload = data if binary else data.encode()
        size = -(-len(payload) // fragments) if fragments > 1 else 0
        self.sendMessage(payload, binary, fragmentSize=size or None)

    async def recv(self) -> Message:
        return await _wait(self.inbox.get())

    async def ping(self, payload: bytes) -> bytes:
        self.sendPing(payload)
        return await _wait(self.pongs.get())

    async def close(self, code: int, reason: str) -> tuple[int, str]:
        self.sendClose(code, reason)
        return await self.closed()

    async def closed(self) -> tuple[int, str]:
        await _wait(self.ended)
        return self.remoteCloseCode, self.remoteCloseReason or ""

    async def abort(self) -> None:
        _reset_on_close(_tcp(self.transport).getHandle())
        _tcp(self.transport).abortConnection()

    async def release(self) -> None:
        _tcp(self.transport).abortConnection()


def _accept_deflate(response: Any) -> PerMessageDeflateResponseAccept | None:
    return PerMessageDeflateResponseAccept(response) if isinstance(response, PerMessageDeflateResponse) else None


class AutobahnClient:
    name = "autobahn"
    can = frozenset({"fragment", "ping", "abort"})

    def __init__(self, ca_path: str) -> None:
        self.ca_path = ca_path

    def _tls(self, factory: WebSocketClientFactory) -> Any:
        """Without a context factory autobahn's wss checks nothing; this one verifies against the CA."""
        if not factory.isSecure:
            return None
        with open(self.ca_path, "rb") as pem:
            return optionsForClientTLS(factory.host, trustRoot=Certificate.loadPEM(pem.read()))

    async def open(self, url: str, protocols: list[str]) -> Conn:
        factory = WebSocketClientFactory(url, protocols=protocols)
        factory.protocol = _AutobahnConn
        factory.setProtocolOptions(perMessageCompressionOffers=[PerMessageDeflateOffer()],
                                   perMessageCompressionAccept=_accept_deflate,
                                   maxMessagePayloadSize=MAX_MESSAGE, echoCloseCodeReason=True)
        factory.opened = defer.Deferred()
        connector = connectWS(factory, contextFactory=self._tls(factory))
        try:
            return await _wait(factory.opened)
        except BaseException:
            connector.disconnect()
            raise


def _encode(data: Message) -> dict[str, Any]:
    if isinstance(data, bytes):
        return {"binary": True, "data": base64.b64encode(data).decode()}
    return {"binary": False, "data": data}


def _decode(item: dict[str, Any]) -> Message:
    return base64.b64decode(item["data"]) if item["binary"] else item["data"]


class _RemoteConn:
    """A connection held by a JavaScript driver; ``call`` runs one of its ops."""

    def __init__(self, call: Any, opened: dict[str, Any], release: Any) -> None:
        self.call = call
        self.protocol = opened["protocol"]
        self.extensions = opened["extensions"]
        self.release = release

    async def send(self, data: Message, fragments: int = 1) -> None:
        await self.call("send", fragments=fragments, **_encode(data))

    async def recv(self) -> Message:
        return _decode(await self.call("recv"))

    async def ping(self, payload: bytes) -> bytes:
        return base64.b64decode(await self.call("ping", data=base64.b64encode(payload).decode()))

    async def close(self, code: int, reason: str) -> tuple[int, str]:
        end = await self.call("close", code=code, reason=reason)
        return end["code"], end["reason"]

    async def closed(self) -> tuple[int, str]:
        end = await self.call("closed")
        return end["code"], end["reason"]

    async def abort(self) -> None:
        await self.call("abort")


class NodeClient:
    """Node's ``ws`` in a fresh ``node`` process per connection."""

    name = "node-ws"
    can = frozenset({"fragment", "ping", "abort"})

    def __init__(self, ca_path: str) -> None:
        self.ca_path = ca_path

    async def open(self, url: str, protocols: list[str]) -> Conn:
        process = await asyncio.create_subprocess_exec(
            "node", str(PEERS / "node_client.js"), env=NODE_ENV, limit=4 * MAX_MESSAGE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)

        async def call(op: str, **args: Any) -> Any:
            process.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
            answer = json.loads(await process.stdout.readline() or b'{"error": "node exited"}')
            if "error" in answer:
                raise ConnectionError(f"node-ws {op}: {answer['error']}")
            return answer["ok"]

        async def release() -> None:
            if process.returncode is None:
                process.kill()
            await process.wait()

        try:
            opened = await call("open", url=url, protocols=protocols, ca=self.ca_path if _secure(url) else None)
            return _RemoteConn(call, opened, release)
        except BaseException:
            await release()
            raise


class ChromiumClient:
    """Headless Chromium: each connection is opened by a fresh page load of the test page."""

    name = "chromium"
    can = frozenset()

    def __init__(self, browser: Browser, page_url: str) -> None:
        self.browser = browser
        self.page_url = page_url

    async def open(self, url: str, protocols: list[str]) -> Conn:
        page = await self.browser.page(self.page_url)

        async def call(op: str, **args: Any) -> Any:
            return await page.evaluate(f"driver.{op}({json.dumps(args)})")

        return _RemoteConn(call, await call("open", url=url, protocols=protocols), page.close)

